/* obo.c - OBO 1.2/1.4 [Term] stanza parser (see obo.h). */
#include "io/obo.h"

#include "base/alloc.h"
#include "base/fileutil.h"
#include "base/strmap.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static void term_free(bmfm_obo_term *t) {
    free(t->id);
    free(t->name);
    for (int32_t i = 0; i < t->n_synonyms; i++) free(t->synonyms[i]);
    free(t->synonyms);
    for (int32_t i = 0; i < t->n_alt_ids; i++) free(t->alt_ids[i]);
    free(t->alt_ids);
    for (int32_t i = 0; i < t->n_is_a; i++) free(t->is_a[i]);
    free(t->is_a);
    free(t->is_a_line);
    free(t->replaced_by);
    memset(t, 0, sizeof *t);
}

void bmfm_obo_free(bmfm_obo *o) {
    if (!o) return;
    for (int64_t i = 0; i < o->n_terms; i++) term_free(&o->terms[i]);
    free(o->terms);
    free(o->format_version);
    free(o->data_version);
    free(o->source);
    memset(o, 0, sizeof *o);
}

static char *dup_n(const char *s, size_t n) {
    char *d = bmfm_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* Append an owned string to an array whose capacity is implied by its count
 * (grown at 0, 1, 2, 4, ...). Frees s on failure. */
static int push_owned(char ***arr, int32_t *count, char *s) {
    int32_t c = *count;
    if ((c & (c - 1)) == 0) {
        char **p = bmfm_realloc(*arr, (size_t)(c ? c * 2 : 1) * sizeof *p);
        if (!p) {
            free(s);
            return -1;
        }
        *arr = p;
    }
    (*arr)[c] = s;
    *count = c + 1;
    return 0;
}

static int push_str(char ***arr, int32_t *count, const char *s, size_t n) {
    char *d = dup_n(s, n);
    return d ? push_owned(arr, count, d) : -1;
}

/* First whitespace-delimited token of v (ids never contain blanks, and this
 * drops `{modifiers}` and `! comments`). */
static size_t token_len(const char *v, size_t n) {
    size_t i = 0;
    while (i < n && !isspace((unsigned char)v[i])) i++;
    return i;
}

/* Parse a quoted OBO string at v (v[0] == '"'), unescaping into out (n+1
 * bytes). Returns the offset after the closing quote, or 0 if unterminated. */
static size_t parse_quoted(const char *v, size_t n, char *out) {
    size_t j = 0;
    for (size_t i = 1; i < n; i++) {
        if (v[i] == '\\' && i + 1 < n) {
            char c = v[++i];
            out[j++] = c == 'n' ? ' ' : c == 't' ? ' ' : c;
        } else if (v[i] == '"') {
            out[j] = 0;
            return i + 1;
        } else {
            out[j++] = v[i];
        }
    }
    return 0;
}

/* Unescape an unquoted value and cut a trailing " ! comment" or
 * " {modifiers}" (OBO 1.4 allows both after any value). */
static char *plain_value(const char *v, size_t n) {
    char *out = bmfm_malloc(n + 1);
    if (!out) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '\\' && i + 1 < n) {
            out[j++] = v[++i];
            continue;
        }
        if ((v[i] == '!' || v[i] == '{') && i > 0 && isspace((unsigned char)v[i - 1])) break;
        out[j++] = v[i];
    }
    while (j > 0 && isspace((unsigned char)out[j - 1])) j--;
    out[j] = 0;
    return out;
}

static bmfm_obo_term *new_term(bmfm_obo *o) {
    if (bmfm_grow((void **)&o->terms, &o->cap_terms, (size_t)o->n_terms + 1, sizeof *o->terms))
        return NULL;
    bmfm_obo_term *t = &o->terms[o->n_terms++];
    memset(t, 0, sizeof *t);
    return t;
}

bmfm_status bmfm_obo_append_term(bmfm_obo *o, const char *id, const char *name) {
    bmfm_obo_term *t = new_term(o);
    if (!t) return BMFM_E_NOMEM;
    t->id = bmfm_strdup(id);
    t->name = bmfm_strdup(name ? name : "");
    if (!t->id || !t->name) return BMFM_E_NOMEM;
    return BMFM_OK;
}

/* Finish a [Term] stanza: it must have an id, unique in the file. */
static bmfm_status close_term(bmfm_obo *o, bmfm_strmap *seen, const char *src) {
    bmfm_obo_term *t = &o->terms[o->n_terms - 1];
    if (!t->id) return bmfm_error_set(BMFM_E_INPUT, "%s: line %d: [Term] stanza has no id", src, t->line);
    if (!t->name && !(t->name = bmfm_strdup(""))) return BMFM_E_NOMEM;
    int64_t first;
    int r = bmfm_strmap_put(seen, t->id, t->line, &first);
    if (r < 0) return BMFM_E_NOMEM;
    if (r == 0)
        return bmfm_error_set(BMFM_E_INPUT, "%s: line %d: duplicate term id %s (first defined at line %lld)",
                              src, t->line, t->id, (long long)first);
    if (t->obsolete) o->n_obsolete++;
    o->n_is_a += t->n_is_a;
    return BMFM_OK;
}

/* One `tag: value` line of a [Term] stanza. */
static bmfm_status term_tag(bmfm_obo_term *t, const char *tag, size_t tn, const char *v, size_t vn,
                            const char *src, int line) {
#define TAG_IS(s) (tn == sizeof(s) - 1 && !memcmp(tag, s, tn))
    if (TAG_IS("id")) {
        size_t k = token_len(v, vn);
        if (!k) return bmfm_error_set(BMFM_E_INPUT, "%s: line %d: empty id", src, line);
        if (t->id) return bmfm_error_set(BMFM_E_INPUT, "%s: line %d: second id in one [Term] stanza", src, line);
        if (!(t->id = dup_n(v, k))) return BMFM_E_NOMEM;
    } else if (TAG_IS("name")) {
        if (!t->name && !(t->name = plain_value(v, vn))) return BMFM_E_NOMEM;
    } else if (TAG_IS("is_a")) {
        size_t k = token_len(v, vn);
        if (!k) return bmfm_error_set(BMFM_E_INPUT, "%s: line %d: empty is_a", src, line);
        int32_t c = t->n_is_a;
        if (push_str(&t->is_a, &t->n_is_a, v, k)) return BMFM_E_NOMEM;
        int32_t *ln = bmfm_realloc(t->is_a_line, (size_t)(c + 1) * sizeof *ln);
        if (!ln) return BMFM_E_NOMEM;
        ln[c] = line;
        t->is_a_line = ln;
    } else if (TAG_IS("alt_id")) {
        size_t k = token_len(v, vn);
        if (k && push_str(&t->alt_ids, &t->n_alt_ids, v, k)) return BMFM_E_NOMEM;
    } else if (TAG_IS("replaced_by")) {
        size_t k = token_len(v, vn);
        if (k && !t->replaced_by && !(t->replaced_by = dup_n(v, k))) return BMFM_E_NOMEM;
    } else if (TAG_IS("is_obsolete")) {
        t->obsolete = vn >= 4 && !memcmp(v, "true", 4);
    } else if (TAG_IS("synonym") || TAG_IS("exact_synonym") || TAG_IS("def")) {
        if (vn == 0 || v[0] != '"')
            return bmfm_error_set(BMFM_E_INPUT, "%s: line %d: %.*s value must start with a quote", src,
                                  line, (int)tn, tag);
        char *text = bmfm_malloc(vn + 1);
        if (!text) return BMFM_E_NOMEM;
        size_t end = parse_quoted(v, vn, text);
        if (!end) {
            free(text);
            return bmfm_error_set(BMFM_E_INPUT, "%s: line %d: unterminated quote in %.*s", src, line,
                                  (int)tn, tag);
        }
        int exact = TAG_IS("exact_synonym");
        if (TAG_IS("synonym")) {
            while (end < vn && isspace((unsigned char)v[end])) end++;
            exact = vn - end >= 5 && !memcmp(v + end, "EXACT", 5) &&
                    (vn - end == 5 || isspace((unsigned char)v[end + 5]) || v[end + 5] == '[');
        }
        if (exact) {
            if (push_owned(&t->synonyms, &t->n_synonyms, text)) return BMFM_E_NOMEM;
        } else {
            free(text);
        }
    }
#undef TAG_IS
    return BMFM_OK;
}

bmfm_status bmfm_obo_parse(const char *text, size_t len, const char *source, bmfm_obo *out) {
    bmfm_status st = BMFM_OK;
    bmfm_obo o = {0};
    bmfm_strmap seen = {0};
    enum { HEADER, TERM, OTHER } where = HEADER;
    const char *src = source ? source : "<obo>";
    if (bmfm_strmap_init(&seen, 4096)) return BMFM_E_NOMEM;
    if (!(o.source = bmfm_strdup(src))) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    int line = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl ? 1 : 0);
        line++;
        while (n > 0 && (s[n - 1] == '\r' || isspace((unsigned char)s[n - 1]))) n--;
        while (n > 0 && isspace((unsigned char)s[0])) s++, n--;
        if (n == 0 || s[0] == '!') continue;
        if (s[0] == '[') {
            if (s[n - 1] != ']') {
                st = bmfm_error_set(BMFM_E_INPUT, "%s: line %d: unterminated stanza header '%.*s'", src,
                                    line, (int)(n > 60 ? 60 : n), s);
                goto done;
            }
            if (where == TERM && (st = close_term(&o, &seen, src))) goto done;
            if (n == 6 && !memcmp(s, "[Term]", 6)) {
                bmfm_obo_term *t = new_term(&o);
                if (!t) {
                    st = BMFM_E_NOMEM;
                    goto done;
                }
                t->line = line;
                where = TERM;
            } else {
                if (n == 9 && !memcmp(s, "[Typedef]", 9)) o.n_typedefs++;
                where = OTHER;
            }
            continue;
        }
        const char *colon = memchr(s, ':', n);
        if (!colon || colon == s) {
            st = bmfm_error_set(BMFM_E_INPUT, "%s: line %d: expected 'tag: value', got '%.*s'", src, line,
                                (int)(n > 60 ? 60 : n), s);
            goto done;
        }
        size_t tn = (size_t)(colon - s);
        const char *v = colon + 1;
        size_t vn = n - tn - 1;
        while (vn > 0 && isspace((unsigned char)v[0])) v++, vn--;
        if (where == HEADER) {
            char **slot = tn == 14 && !memcmp(s, "format-version", 14) ? &o.format_version
                          : tn == 12 && !memcmp(s, "data-version", 12) ? &o.data_version
                                                                          : NULL;
            if (slot && !*slot && !(*slot = dup_n(v, vn))) {
                st = BMFM_E_NOMEM;
                goto done;
            }
        } else if (where == TERM) {
            if ((st = term_tag(&o.terms[o.n_terms - 1], s, tn, v, vn, src, line))) goto done;
        }
    }
    if (where == TERM && (st = close_term(&o, &seen, src))) goto done;
    if ((!o.format_version && !(o.format_version = bmfm_strdup(""))) ||
        (!o.data_version && !(o.data_version = bmfm_strdup("")))) {
        st = BMFM_E_NOMEM;
        goto done;
    }
done:
    bmfm_strmap_free(&seen);
    if (st) {
        bmfm_obo_free(&o);
        memset(out, 0, sizeof *out);
    } else {
        *out = o;
    }
    return st;
}

bmfm_status bmfm_obo_read(const char *path, bmfm_obo *out) {
    char *data = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    bmfm_status st = bmfm_read_file(path, &data, &len);
    if (st) return st;
    st = bmfm_obo_parse(data, len, path, out);
    free(data);
    return st;
}
