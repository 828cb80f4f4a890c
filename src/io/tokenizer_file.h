/* tokenizer_file.h - a token vocabulary (token <-> id) read from the files a
 * BMFM checkpoint or a user brings: a Hugging Face tokenizer.json with a
 * WordLevel model (plus its added_tokens), a vocab.txt (one token a line, id =
 * line number), a vocab.json ({token: id}), or a plain gene list (one symbol a
 * line, or a JSON list of strings; id = position). A directory is searched for
 * tokenizer.json, vocab.json, vocab.txt in that order. Files may be gzipped.
 *
 * This is only the vocabulary: no pre-tokenization, no templates, no
 * normalizers (BMFM's gene tokenizers have none: lookup is exact string match).
 * Tokens written in square brackets ([CLS], [CLS_0], [PAD]) are special.
 */
#ifndef BMFM_IO_TOKENIZER_FILE_H
#define BMFM_IO_TOKENIZER_FILE_H

#include "base/error.h"
#include "base/strmap.h"

#include <stdint.h>

typedef struct bmfm_token_vocab {
    int64_t n_ids;      /* max id + 1 */
    int64_t n_tokens;   /* distinct tokens (<= n_ids; ids may have gaps) */
    int64_t n_special;  /* tokens in [brackets] or marked special in added_tokens */
    char **tokens;      /* by id, NULL for unused ids */
    uint8_t *special;   /* by id */
    bmfm_strmap map;    /* token -> id (exact) */
    char format[32];    /* "tokenizer.json", "vocab.json", "vocab.txt", "gene list" */
} bmfm_token_vocab;

bmfm_status bmfm_token_vocab_load(const char *path, bmfm_token_vocab *out);
void bmfm_token_vocab_free(bmfm_token_vocab *v);
/* Id of `token` (exact match) or -1. */
int64_t bmfm_token_vocab_id(const bmfm_token_vocab *v, const char *token);

#endif
