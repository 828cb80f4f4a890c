/* obo.h - parser for OBO 1.2 / 1.4 ontology files (cl-basic.obo, cl.obo,
 * cl-simple.obo and other OBO Foundry products).
 *
 * It reads the [Term] stanzas and, of each, the tags a label space needs:
 * id, name, exact synonyms (`synonym: "..." EXACT [...]` and the OBO 1.0
 * `exact_synonym:`), is_a parents (trailing `{modifiers}` and `! comments`
 * stripped), is_obsolete, alt_id and replaced_by. [Typedef] / [Instance]
 * stanzas, unknown tags and every `relationship:` type are skipped, because
 * the reference builds its graph from is_a alone.
 *
 * It is NOT a graph: edges are kept as the is_a strings with their line
 * numbers; ontology.h resolves them (dangling parents, cycles) so that its
 * errors can still cite the line. Malformed input (a stanza header without
 * ']', a quoted string without its closing quote, a [Term] without id, a
 * duplicate id, a line that is not `tag: value`) fails with the line number.
 */
#ifndef BMFM_IO_OBO_H
#define BMFM_IO_OBO_H

#include "base/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct bmfm_obo_term {
    char *id;
    char *name;            /* "" when the stanza has none */
    int obsolete;          /* is_obsolete: true */
    char **synonyms;       /* EXACT synonyms, unescaped */
    int32_t n_synonyms;
    char **alt_ids;
    int32_t n_alt_ids;
    char **is_a;           /* parent ids as written */
    int32_t *is_a_line;    /* 1-based line of each is_a */
    int32_t n_is_a;
    char *replaced_by;     /* first replaced_by, or NULL */
    int32_t line;          /* line of the [Term] header */
} bmfm_obo_term;

typedef struct bmfm_obo {
    bmfm_obo_term *terms;  /* in file order */
    int64_t n_terms;
    size_t cap_terms;
    int64_t n_typedefs;    /* skipped [Typedef] stanzas */
    int64_t n_is_a;        /* is_a lines over all [Term] stanzas */
    int64_t n_obsolete;
    char *format_version;  /* header tags, "" when absent */
    char *data_version;
    char *source;          /* file name used in error messages */
} bmfm_obo;

/* Parse `len` bytes of OBO text; `source` names it in errors. On failure
 * *out is left empty (nothing to free). */
bmfm_status bmfm_obo_parse(const char *text, size_t len, const char *source, bmfm_obo *out);
/* Read and parse a file (.gz is gunzipped transparently). */
bmfm_status bmfm_obo_read(const char *path, bmfm_obo *out);
void bmfm_obo_free(bmfm_obo *o);

/* Append one bare term (no parents) - for ids a checkpoint names that the
 * ontology file lacks. Strings are copied. */
bmfm_status bmfm_obo_append_term(bmfm_obo *o, const char *id, const char *name);

#endif
