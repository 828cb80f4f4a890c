/* annotate.c - `bmfm annotate`: embeddings plus one obs column per label head
 * (options parsed with `bmfm embed`'s, cli/embed.c). */
#include "cli.h"

int bmfm_cli_infer_main(int argc, char **argv, int annotate);

int bmfm_cmd_annotate(int argc, char **argv) { return bmfm_cli_infer_main(argc, argv, 1); }
