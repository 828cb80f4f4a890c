/* h5ad_lzf.h - make h5py's LZF-compressed datasets readable (decode only;
 * see h5ad_lzf.c for why we carry our own decoder). */
#ifndef BMFM_IO_H5AD_LZF_H
#define BMFM_IO_H5AD_LZF_H

/* Register the LZF decoder with libhdf5 unless an LZF filter is already
 * available (idempotent). */
void bmfm_h5_register_lzf(void);

#endif
