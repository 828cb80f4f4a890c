/* api.h - the inference entry points of the public API. Their declarations
 * live in include/bmfm.h (what the CLI and the Python module use); this
 * header keeps the library's own includes short. */
#ifndef BMFM_INFER_API_H
#define BMFM_INFER_API_H

#include "bmfm.h"

#endif
