/* main.c - the `bmfm` command: dispatch to one subcommand per file in cli/.
 *
 * Subcommands are declared weak: a cli/<cmd>.c that is not in the build simply
 * does not appear in the list, so each subcommand lands on its own.
 */
#include "cli.h"

#include "bmfm.h"

#include <stdio.h>
#include <string.h>

#define BMFM_DECLARE_CMD(fn) int fn(int argc, char **argv) __attribute__((weak))
BMFM_DECLARE_CMD(bmfm_cmd_inspect);
BMFM_DECLARE_CMD(bmfm_cmd_ontology);
BMFM_DECLARE_CMD(bmfm_cmd_embed);
BMFM_DECLARE_CMD(bmfm_cmd_annotate);
BMFM_DECLARE_CMD(bmfm_cmd_model);
BMFM_DECLARE_CMD(bmfm_cmd_eval);
BMFM_DECLARE_CMD(bmfm_cmd_baseline);
BMFM_DECLARE_CMD(bmfm_cmd_pretrain);
BMFM_DECLARE_CMD(bmfm_cmd_finetune);
BMFM_DECLARE_CMD(bmfm_cmd_explain);

typedef struct {
    const char *name;
    bmfm_cmd_fn fn;
    const char *summary;
} cmd_entry;

static const cmd_entry *commands(size_t *n) {
    static cmd_entry table[16];
    static size_t count;
    if (!count) {
        const cmd_entry all[] = {
            {"inspect", bmfm_cmd_inspect, "describe an .h5ad file or 10x directory (shape, encoding, labels, gene coverage)"},
            {"embed", bmfm_cmd_embed, "write cell embeddings into obsm"},
            {"annotate", bmfm_cmd_annotate, "embeddings plus cell-type calls in obs"},
            {"model", bmfm_cmd_model, "inspect a model directory"},
            {"ontology", bmfm_cmd_ontology, "Cell Ontology: summary, lineage, pruning to a label column"},
            {"eval", bmfm_cmd_eval, "scib metrics and linear probe of embeddings"},
            {"baseline", bmfm_cmd_baseline, "baseline embeddings (PCA on HVGs)"},
            {"pretrain", bmfm_cmd_pretrain, "pretrain a model (WCED / MLM / HCE)"},
            {"finetune", bmfm_cmd_finetune, "fine-tune a model on labelled cells"},
            {"explain", bmfm_cmd_explain, "integrated-gradients attributions"},
        };
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (all[i].fn) table[count++] = all[i];
    }
    *n = count;
    return table;
}

static void usage(FILE *f) {
    size_t n;
    const cmd_entry *t = commands(&n);
    fprintf(f, "bmfm %s - transcriptomic foundation models (BMFM-RNA) in C\n\n", bmfm_version());
    fprintf(f, "usage: bmfm <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < n; i++) fprintf(f, "  %-10s %s\n", t[i].name, t[i].summary);
    fprintf(f, "\n'bmfm <command> --help' describes a command. Exit codes: 0 ok, 1 check failed,\n"
               "2 bad input or options, 70 internal error.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? BMFM_EXIT_INPUT : BMFM_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("bmfm %s\n", bmfm_version());
        return BMFM_EXIT_OK;
    }
    size_t n;
    const cmd_entry *t = commands(&n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(argv[1], t[i].name)) return t[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "bmfm: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return BMFM_EXIT_INPUT;
}
