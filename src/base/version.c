/* version.c - library version string. */
#include "bmfm.h"

const char *bmfm_version(void) { return BMFM_VERSION; }
