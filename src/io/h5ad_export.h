/* h5ad_export.h - build a fresh AnnData layout from a dataset inside an
 * already created HDF5 file (the public, atomic entry point is
 * bmfm_h5ad_export in h5ad_write.h). */
#ifndef BMFM_IO_H5AD_EXPORT_H
#define BMFM_IO_H5AD_EXPORT_H

#include "io/dataset.h"

#include <hdf5.h>

bmfm_status bmfm_h5ad_export_into(bmfm_dataset *ds, hid_t file);

#endif
