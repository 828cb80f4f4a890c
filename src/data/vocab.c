/* vocab.c - dataset gene -> vocab id resolution and coverage (see vocab.h). */
#include "data/vocab.h"

#include "base/alloc.h"
#include "base/fileutil.h"
#include "base/log.h"
#include "base/strmap.h"

#include <cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bmfm_gene_map_options_default(bmfm_gene_map_options *o) {
    memset(o, 0, sizeof *o);
    o->ensembl = -1;
    o->case_insensitive = 1;
}

const char *bmfm_gene_match_name(bmfm_gene_match h) {
    switch (h) {
    case BMFM_GENE_EXACT: return "exact";
    case BMFM_GENE_CASE: return "case-insensitive";
    case BMFM_GENE_ALIAS: return "alias";
    case BMFM_GENE_NOT_ALLOWED: return "not-allowed";
    default: return "unmatched";
    }
}

static void upper_into(char *dst, size_t n, const char *s) {
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++) dst[i] = (char)toupper((unsigned char)s[i]);
    dst[i] = '\0';
}

static int looks_ensembl(const char *s) {
    const char *p = NULL;
    if (!strncmp(s, "ENSMUSG", 7))
        p = s + 7;
    else if (!strncmp(s, "ENSG", 4))
        p = s + 4;
    return p && isdigit((unsigned char)*p);
}

/* ---- Ensembl table: id (no version) -> symbol ---- */

typedef struct {
    bmfm_strmap ids;   /* id -> row */
    char *text;        /* the file, split in place */
    char **names;      /* by row, pointers into text */
    size_t n, cap;
} gene_table;

static void gene_table_free(gene_table *t) {
    if (t->ids.keys) bmfm_strmap_free(&t->ids);
    free(t->text);
    free(t->names);
    memset(t, 0, sizeof *t);
}

static bmfm_status gene_table_load(const char *path, gene_table *t) {
    memset(t, 0, sizeof *t);
    BMFM_TRY(bmfm_read_file(path, &t->text, NULL));
    if (bmfm_strmap_init(&t->ids, 1 << 17)) return BMFM_E_NOMEM;
    int64_t line = 0;
    for (char *p = t->text; *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        line++;
        char *c1 = strchr(p, ',');
        if (*p && p[0] != '\r') {
            if (!c1)
                return bmfm_error_set(BMFM_E_INPUT, "%s: line %lld: expected 'gene_id,gene_name,...'", path,
                                      (long long)line);
            *c1 = '\0';
            char *name = c1 + 1, *c2 = strchr(name, ',');
            if (c2) *c2 = '\0';
            char *dot = strchr(p, '.');
            if (dot) *dot = '\0';
            if (bmfm_grow((void **)&t->names, &t->cap, t->n + 1, sizeof *t->names)) return BMFM_E_NOMEM;
            if (bmfm_strmap_put(&t->ids, p, (int64_t)t->n, NULL) < 0) return BMFM_E_NOMEM;
            t->names[t->n++] = name;
        }
        if (!nl) break;
        p = nl + 1;
    }
    if (t->n == 0) return bmfm_error_set(BMFM_E_INPUT, "%s: no genes in the table", path);
    return BMFM_OK;
}

/* dir/<prefix>*.csv[.gz] -> out */
static bmfm_status find_table(const char *dir, const char *prefix, char *out, size_t n) {
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d)
        return bmfm_error_set(BMFM_E_INPUT,
                              "the genes are Ensembl ids: give a gene table (%s*.csv.gz, columns id,name) or its "
                              "directory (cannot open '%s')",
                              prefix, dir ? dir : "(none)");
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && strstr(e->d_name, ".csv")) {
            bmfm_path_join(out, n, dir, e->d_name);
            found = 1;
        }
    closedir(d);
    if (!found) return bmfm_error_set(BMFM_E_INPUT, "%s: no %s*.csv[.gz] gene table for the Ensembl ids", dir, prefix);
    return BMFM_OK;
}

/* ---- alias map: upper(alias) -> approved symbol ---- */

typedef struct {
    bmfm_strmap map; /* upper(alias) -> index into targets */
    char **targets;
    size_t n;
} alias_map;

static void alias_map_free(alias_map *a) {
    if (a->map.keys) bmfm_strmap_free(&a->map);
    for (size_t i = 0; i < a->n; i++) free(a->targets[i]);
    free(a->targets);
    memset(a, 0, sizeof *a);
}

static bmfm_status alias_map_load(const char *path, alias_map *a) {
    memset(a, 0, sizeof *a);
    char *text = NULL;
    BMFM_TRY(bmfm_read_file(path, &text, NULL));
    cJSON *root = cJSON_Parse(text);
    free(text);
    bmfm_status s = BMFM_OK;
    if (!cJSON_IsObject(root)) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: not a JSON object {alias: approved symbol}", path);
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(root);
    a->targets = bmfm_calloc(n ? n : 1, sizeof *a->targets);
    if (!a->targets || bmfm_strmap_init(&a->map, n)) {
        s = BMFM_E_NOMEM;
        goto done;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (!cJSON_IsString(it) || !it->string) {
            s = bmfm_error_set(BMFM_E_INPUT, "%s: value of '%.60s' is not a string", path, it->string ? it->string : "");
            goto done;
        }
        char up[256];
        upper_into(up, sizeof up, it->string);
        if (!(a->targets[a->n] = bmfm_strdup(it->valuestring)) || bmfm_strmap_put(&a->map, up, (int64_t)a->n, NULL) < 0) {
            s = BMFM_E_NOMEM;
            goto done;
        }
        a->n++;
    }
done:
    cJSON_Delete(root);
    if (s) alias_map_free(a);
    return s;
}

/* ---- resolver ---- */

typedef struct {
    const bmfm_token_vocab *v;
    bmfm_strmap upper; /* upper(token) -> id, -2 when two tokens collide */
    int has_upper;
} matcher;

static int64_t match_exact(const matcher *mt, const char *s) {
    int64_t id = bmfm_token_vocab_id(mt->v, s);
    return id >= 0 && mt->v->special[id] ? -1 : id;
}

static int64_t match_case(const matcher *mt, const char *s) {
    char up[256];
    int64_t id;
    if (!mt->has_upper) return -1;
    upper_into(up, sizeof up, s);
    return bmfm_strmap_get(&mt->upper, up, &id) && id >= 0 ? id : -1;
}

static int cmp_dup(const void *a, const void *b, void *ids) {
    const int64_t *x = a, *y = b, *id = ids;
    if (id[*x] != id[*y]) return id[*x] < id[*y] ? -1 : 1;
    return (*x > *y) - (*x < *y);
}

bmfm_status bmfm_gene_map_build(bmfm_dataset *ds, const bmfm_token_vocab *v, const bmfm_gene_map_options *o,
                                bmfm_gene_map *out) {
    bmfm_gene_map_options def;
    if (!o) {
        bmfm_gene_map_options_default(&def);
        o = &def;
    }
    memset(out, 0, sizeof *out);
    matcher mt = {v};
    gene_table table = {0};
    alias_map alias = {0};
    bmfm_column col = {0};
    int32_t *hits = NULL;
    char **names_owned = NULL;
    const char *const *names = NULL;
    bmfm_status s = BMFM_OK;
    int64_t n = bmfm_dataset_n_vars(ds);
    char buf[64];

    if (o->var_column) {
        s = bmfm_dataset_var_column(ds, o->var_column, &col);
        if (s) goto done;
        names_owned = bmfm_calloc((size_t)n + 1, sizeof *names_owned);
        if (!names_owned) {
            s = BMFM_E_NOMEM;
            goto done;
        }
        for (int64_t g = 0; g < n; g++) {
            const char *t = bmfm_column_text(&col, g, buf, sizeof buf);
            if (t && !(names_owned[g] = bmfm_strdup(t))) {
                s = BMFM_E_NOMEM;
                goto done;
            }
        }
        names = (const char *const *)names_owned;
    } else {
        s = bmfm_dataset_var_names(ds, &names);
        if (s) goto done;
    }

    out->n_genes = n;
    out->ids = bmfm_malloc((size_t)(n ? n : 1) * sizeof *out->ids);
    out->how = bmfm_calloc((size_t)(n ? n : 1), sizeof *out->how);
    out->symbols = bmfm_calloc((size_t)(n ? n : 1), sizeof *out->symbols);
    if (!out->ids || !out->how || !out->symbols) {
        s = BMFM_E_NOMEM;
        goto done;
    }

    /* Ensembl ids? */
    int ens = o->ensembl;
    if (ens < 0) {
        int64_t look = n < 10 ? n : 10, hit = 0;
        for (int64_t g = 0; g < look; g++) hit += names[g] && looks_ensembl(names[g]);
        ens = look > 0 && hit * 10 > look * 8;
    }
    out->ensembl = ens;
    if (ens) {
        const char *first = NULL;
        for (int64_t g = 0; g < n && !first; g++)
            if (names[g] && looks_ensembl(names[g])) first = names[g];
        char tpath[4096];
        if (o->ensembl_table) {
            snprintf(tpath, sizeof tpath, "%s", o->ensembl_table);
        } else {
            s = find_table(o->ensembl_table_dir,
                           first && !strncmp(first, "ENSMUSG", 7) ? "cellxgene_genes_mus_musculus"
                                                                  : "cellxgene_genes_homo_sapiens",
                           tpath, sizeof tpath);
            if (s) goto done;
        }
        snprintf(out->ensembl_table_used, sizeof out->ensembl_table_used, "%.500s", tpath);
        s = gene_table_load(tpath, &table);
        if (s) goto done;
    }
    for (int64_t g = 0; g < n; g++) {
        const char *name = names[g];
        if (!name || !*name) continue;
        if (ens) {
            char id[128];
            snprintf(id, sizeof id, "%s", name);
            char *dot = strchr(id, '.');
            if (dot) *dot = '\0';
            int64_t row;
            if (!bmfm_strmap_get(&table.ids, id, &row)) {
                out->n_ensembl_unknown++;
                continue;
            }
            name = table.names[row];
        }
        if (!(out->symbols[g] = bmfm_strdup(name))) {
            s = BMFM_E_NOMEM;
            goto done;
        }
    }

    if (o->case_insensitive) {
        if (bmfm_strmap_init(&mt.upper, (size_t)v->n_tokens)) {
            s = BMFM_E_NOMEM;
            goto done;
        }
        mt.has_upper = 1;
        for (int64_t id = 0; id < v->n_ids; id++) {
            if (!v->tokens[id] || v->special[id]) continue;
            char up[256];
            int64_t old;
            upper_into(up, sizeof up, v->tokens[id]);
            int r = bmfm_strmap_put(&mt.upper, up, id, &old);
            if (r < 0) {
                s = BMFM_E_NOMEM;
                goto done;
            }
            if (r == 0 && old != id) {
                int64_t *slot = NULL; /* mark the collision: -2 never matches */
                for (size_t i = 0; i < mt.upper.cap; i++)
                    if (mt.upper.keys[i] && !strcmp(mt.upper.keys[i], up)) slot = &mt.upper.values[i];
                if (slot) *slot = -2;
            }
        }
    }
    if (o->alias_map) {
        s = alias_map_load(o->alias_map, &alias);
        if (s) goto done;
    }

    for (int64_t g = 0; g < n; g++) {
        const char *sym = out->symbols[g];
        int64_t id = -1;
        bmfm_gene_match how = BMFM_GENE_UNMATCHED;
        if (sym) {
            if ((id = match_exact(&mt, sym)) >= 0)
                how = BMFM_GENE_EXACT;
            else if ((id = match_case(&mt, sym)) >= 0)
                how = BMFM_GENE_CASE;
            else if (alias.n) {
                char up[256];
                int64_t k;
                upper_into(up, sizeof up, sym);
                if (bmfm_strmap_get(&alias.map, up, &k)) {
                    id = match_exact(&mt, alias.targets[k]);
                    if (id < 0) id = match_case(&mt, alias.targets[k]);
                    if (id >= 0) how = BMFM_GENE_ALIAS;
                }
            }
        }
        if (id >= 0 && o->allowed && bmfm_token_vocab_id(o->allowed, v->tokens[id]) < 0) {
            id = -1;
            how = BMFM_GENE_NOT_ALLOWED;
        }
        out->ids[g] = id;
        out->how[g] = (uint8_t)how;
        out->n_exact += how == BMFM_GENE_EXACT;
        out->n_case += how == BMFM_GENE_CASE;
        out->n_alias += how == BMFM_GENE_ALIAS;
        out->n_not_allowed += how == BMFM_GENE_NOT_ALLOWED;
    }
    out->n_matched = out->n_exact + out->n_case + out->n_alias;
    out->n_unmatched = n - out->n_matched;

    /* duplicates */
    hits = bmfm_calloc((size_t)(v->n_ids ? v->n_ids : 1), sizeof *hits);
    if (!hits) {
        s = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t g = 0; g < n; g++)
        if (out->ids[g] >= 0) hits[out->ids[g]]++;
    for (int64_t id = 0; id < v->n_ids; id++)
        if (hits[id] > 1) {
            out->n_dup_targets++;
            out->n_dup_genes += hits[id];
        }
    if (out->n_dup_genes) {
        out->dup_genes = bmfm_malloc((size_t)out->n_dup_genes * sizeof *out->dup_genes);
        if (!out->dup_genes) {
            s = BMFM_E_NOMEM;
            goto done;
        }
        int64_t k = 0;
        for (int64_t g = 0; g < n; g++)
            if (out->ids[g] >= 0 && hits[out->ids[g]] > 1) out->dup_genes[k++] = g;
        qsort_r(out->dup_genes, (size_t)k, sizeof *out->dup_genes, cmp_dup, out->ids);
    }
done:
    free(hits);
    if (mt.has_upper) bmfm_strmap_free(&mt.upper);
    gene_table_free(&table);
    alias_map_free(&alias);
    bmfm_column_free(&col);
    if (names_owned)
        for (int64_t g = 0; g < n; g++) free(names_owned[g]);
    free(names_owned);
    if (s) bmfm_gene_map_free(out);
    return s;
}

void bmfm_gene_map_free(bmfm_gene_map *m) {
    free(m->ids);
    free(m->how);
    if (m->symbols)
        for (int64_t g = 0; g < m->n_genes; g++) free(m->symbols[g]);
    free(m->symbols);
    free(m->dup_genes);
    memset(m, 0, sizeof *m);
}

/* ---- coverage ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_total_desc(const void *a, const void *b, void *totals) {
    const double *t = totals;
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (t[x] != t[y]) return t[x] > t[y] ? -1 : 1;
    return (x > y) - (x < y);
}

bmfm_status bmfm_gene_coverage_compute(bmfm_dataset *ds, const bmfm_gene_map *m, int64_t chunk, int n_top,
                                       bmfm_gene_coverage *out) {
    memset(out, 0, sizeof *out);
    int64_t n_obs = bmfm_dataset_n_obs(ds), n_vars = bmfm_dataset_n_vars(ds);
    if (m->n_genes != n_vars)
        return bmfm_error_set(BMFM_E_INTERNAL, "gene map has %lld genes, dataset %lld", (long long)m->n_genes,
                              (long long)n_vars);
    if (chunk <= 0) chunk = 1024;
    bmfm_csr rows = {0};
    double *gene_total = bmfm_calloc((size_t)(n_vars ? n_vars : 1), sizeof *gene_total);
    double *frac = bmfm_malloc((size_t)(n_obs ? n_obs : 1) * sizeof *frac);
    int64_t *order = NULL;
    bmfm_status s = BMFM_OK;
    int64_t n_frac = 0;
    if (!gene_total || !frac) {
        s = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t b = 0; b < n_obs; b += chunk) {
        int64_t e = b + chunk < n_obs ? b + chunk : n_obs;
        s = bmfm_dataset_read_rows(ds, b, e, &rows);
        if (s) goto done;
        for (int64_t i = 0; i < rows.nrows; i++) {
            double tot = 0, cov = 0;
            for (int64_t k = rows.indptr[i]; k < rows.indptr[i + 1]; k++) {
                double x = rows.data[k];
                if (x <= 0) continue;
                int32_t g = rows.indices[k];
                tot += x;
                gene_total[g] += x;
                if (m->ids[g] >= 0) cov += x;
            }
            out->total += tot;
            out->covered += cov;
            if (tot > 0)
                frac[n_frac++] = cov / tot;
            else
                out->n_empty_cells++;
        }
    }
    out->n_cells = n_obs;
    if (n_frac) {
        double sum = 0;
        for (int64_t i = 0; i < n_frac; i++) sum += frac[i];
        qsort(frac, (size_t)n_frac, sizeof *frac, cmp_double);
        out->frac_mean = sum / (double)n_frac;
        out->frac_min = frac[0];
        out->frac_max = frac[n_frac - 1];
        out->frac_median = n_frac % 2 ? frac[n_frac / 2] : 0.5 * (frac[n_frac / 2 - 1] + frac[n_frac / 2]);
    }
    /* most abundant unmatched genes */
    order = bmfm_malloc((size_t)(n_vars ? n_vars : 1) * sizeof *order);
    if (!order) {
        s = BMFM_E_NOMEM;
        goto done;
    }
    int64_t n_un = 0;
    for (int64_t g = 0; g < n_vars; g++)
        if (m->ids[g] < 0 && gene_total[g] > 0) order[n_un++] = g;
    qsort_r(order, (size_t)n_un, sizeof *order, cmp_total_desc, gene_total);
    out->n_top = n_top < n_un ? n_top : n_un;
    out->top_genes = bmfm_malloc((size_t)(out->n_top ? out->n_top : 1) * sizeof *out->top_genes);
    out->top_totals = bmfm_malloc((size_t)(out->n_top ? out->n_top : 1) * sizeof *out->top_totals);
    if (!out->top_genes || !out->top_totals) {
        s = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < out->n_top; i++) {
        out->top_genes[i] = order[i];
        out->top_totals[i] = gene_total[order[i]];
    }
done:
    bmfm_csr_free(&rows);
    free(gene_total);
    free(frac);
    free(order);
    if (s) bmfm_gene_coverage_free(out);
    return s;
}

void bmfm_gene_coverage_free(bmfm_gene_coverage *c) {
    free(c->top_genes);
    free(c->top_totals);
    memset(c, 0, sizeof *c);
}
