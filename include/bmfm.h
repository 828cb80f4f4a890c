/* bmfm.h - the public C API of libbmfm: what the CLI and the Python module use.
 *
 * Functions return bmfm_status (0 = ok); on failure bmfm_error_message()
 * holds one line naming the file, the field and the cause.
 */
#ifndef BMFM_H
#define BMFM_H

#include "base/error.h"
#include "base/log.h"

#define BMFM_VERSION "0.1.0"

const char *bmfm_version(void);

#endif
