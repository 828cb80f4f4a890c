/* model.c - `bmfm model info DIR`: what a model directory holds (architecture,
 * vocabulary, special-token layout, heads and their label spaces). */
#include "cli.h"

#include "infer/embed.h"
#include "model/params.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: bmfm model info DIR\n\n"
               "Print the architecture, vocabulary size, special-token layout, default pooling,\n"
               "and the label heads with their label spaces of a model directory (the released\n"
               "*.vllm layout: config.json, model.safetensors, checkpoint_metadata.json,\n"
               "tokenizers/genes/). Loads and checks every tensor.\n");
}

int bmfm_cmd_model(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return BMFM_EXIT_OK;
    }
    if (argc != 3 || strcmp(argv[1], "info") != 0) {
        usage(stderr);
        return BMFM_EXIT_INPUT;
    }
    bmfm_infer_model *m = NULL;
    bmfm_status st = bmfm_infer_model_load(argv[2], NULL, &m);
    if (st) return bmfm_cli_fail("model", st);
    const bmfm_model_config *c = &m->model.cfg;
    printf("model directory   %s\n", m->dir);
    printf("architecture      bidirectional LLaMA: %lld layers, hidden %lld, %lld heads of %lld, SwiGLU %lld\n",
           (long long)c->NL, (long long)c->C, (long long)c->NH, (long long)(c->C / (c->NH ? c->NH : 1)),
           (long long)c->F);
    printf("parameters        %lld\n", (long long)bmfm_param_table_count(&m->model.table, 0));
    printf("expression        %s", c->expr_kind == BMFM_EXPR_SCALE_ADAPT ? "scale_adapt" : "mlp_with_special_token_embedding");
    if (c->expr_kind == BMFM_EXPR_SCALE_ADAPT) printf(" (%lld sin/cos basis, scale %g)", (long long)c->n_sin_basis, c->basis_scale);
    printf("\nvocabulary        %lld ids (%lld special), %s\n", (long long)m->vocab.n_ids, (long long)m->vocab.n_special,
           m->vocab.format);
    printf("allowed genes     %s\n", m->has_allowed ? "protein_coding_genes.json in the directory" : "every vocabulary gene");
    printf("sequence          ");
    for (int i = 0; i < m->tok.n_prefix; i++) printf("%s ", m->vocab.tokens[m->tok.prefix[i]]);
    printf("genes... %s\n", m->vocab.tokens[m->tok.sep_id]);
    printf("default pooling   %s\n", m->default_pooling);
    printf("decoders          %s%s\n", c->wced ? "WCED (position 0) " : "",
           c->mlm_regression || c->mlm_is_zero ? "MLM regression/is_zero" : "");
    printf("label heads       %d\n", m->n_labels);
    for (int l = 0; l < m->n_labels; l++) {
        const bmfm_label_space *s = &m->labels[l];
        const bmfm_label_cfg *lc = &c->labels[l];
        printf("  %-28s %6lld classes  reads %s%s", s->name, (long long)s->n_classes,
               lc->decode_from < 0 ? "the pooler" : "position ", "");
        if (lc->decode_from >= 0) printf("%d", lc->decode_from);
        if (s->is_ontology) printf("  ontology %s", lc->ontology);
        printf("  e.g.");
        for (int64_t k = 0; k < s->n_classes && k < 3; k++) printf(" %s", s->classes[k]);
        printf("\n");
    }
    bmfm_infer_model_free(m);
    return BMFM_EXIT_OK;
}
