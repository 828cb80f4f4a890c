/* test_obo.c - OBO parser and DAG build: the real cl-basic counts (from its
 * README), tags of a known term, small fixtures for synonyms / alt_id /
 * replaced_by / escapes, and malformed files that must fail naming the line. */
#include "test_util.h"

#include "base/error.h"
#include "io/obo.h"
#include "onto/ontology.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const bmfm_obo_term *find(const bmfm_obo *o, const char *id) {
    for (int64_t i = 0; i < o->n_terms; i++)
        if (!strcmp(o->terms[i].id, id)) return &o->terms[i];
    return NULL;
}

static void test_cl_basic_counts_and_known_term(void **state) {
    (void)state;
    bmfm_obo o;
    assert_int_equal(bmfm_obo_read(tu_data("ontology/cl-basic_2022-12-15.obo"), &o), BMFM_OK);
    /* shared/data/README.md: 2,804 [Term], 13 [Typedef], 3,705 is_a, 160 obsolete */
    assert_int_equal(o.n_terms, 2804);
    assert_int_equal(o.n_typedefs, 13);
    assert_int_equal(o.n_is_a, 3705);
    assert_int_equal(o.n_obsolete, 160);
    assert_string_equal(o.format_version, "1.2");
    assert_string_equal(o.data_version, "cl/releases/2022-12-15/cl-basic.owl");
    int64_t live_cl = 0;
    for (int64_t i = 0; i < o.n_terms; i++) live_cl += !o.terms[i].obsolete && !strncmp(o.terms[i].id, "CL:", 3);
    assert_int_equal(live_cl, 2644);
    /* memory T cell: 3 exact synonyms, is_a mature T cell with {is_inferred} stripped */
    const bmfm_obo_term *t = find(&o, "CL:0000813");
    assert_non_null(t);
    assert_string_equal(t->name, "memory T cell");
    assert_int_equal(t->n_synonyms, 3);
    assert_string_equal(t->synonyms[0], "memory T lymphocyte");
    assert_int_equal(t->n_is_a, 1);
    assert_string_equal(t->is_a[0], "CL:0002419");
    /* all 580 CL ids of BMFM's vocabulary are present and live */
    FILE *f = fopen(tu_data("genes/bmfm_cellxgene_cell_type_vocabulary.txt"), "r");
    assert_non_null(f);
    char line[256];
    int n_cl = 0, n_live = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (strncmp(line, "CL:", 3)) continue;
        n_cl++;
        const bmfm_obo_term *v = find(&o, line);
        n_live += v && !v->obsolete;
    }
    fclose(f);
    assert_int_equal(n_cl, 580);
    assert_int_equal(n_live, 580);
    bmfm_obo_free(&o);
}

static void test_cl_simple_2026_counts(void **state) {
    (void)state;
    bmfm_obo o;
    assert_int_equal(bmfm_obo_read(tu_data("ontology/cl-simple_2026-03-26.obo"), &o), BMFM_OK);
    /* README: 3,529 [Term], 52 [Typedef], 4,656 is_a lines, 207 obsolete; 26 of
     * those is_a lines and 2 of the obsolete flags sit in [Typedef] stanzas
     * (awk count), which are skipped */
    assert_int_equal(o.n_terms, 3529);
    assert_int_equal(o.n_typedefs, 52);
    assert_int_equal(o.n_is_a, 4656 - 26);
    assert_int_equal(o.n_obsolete, 207 - 2);
    const bmfm_obo_term *t = find(&o, "CL:0000003");
    assert_non_null(t);
    assert_true(t->obsolete);
    bmfm_obo_free(&o);
}

static const char *FIXTURE =
    "format-version: 1.4\n"
    "! a comment line\n"
    "\n"
    "[Term]\n"
    "id: X:1\n"
    "name: root thing\n"
    "\n"
    "[Term]\r\n"
    "id: X:2\r\n"
    "name: child \\\"quoted\\\" thing\r\n"
    "synonym: \"kid\" EXACT []\n"
    "synonym: \"offspring \\\"x\\\"\" EXACT abbreviation [PMID:1]\n"
    "synonym: \"broad kid\" BROAD []\n"
    "synonym: \"EXACT in text\" RELATED []\n"
    "exact_synonym: \"old style\" []\n"
    "alt_id: X:20\n"
    "is_a: X:1 {source=\"x\"} ! root thing\n"
    "relationship: part_of X:1 ! skipped\n"
    "unknown_tag: whatever\n"
    "\n"
    "[Typedef]\n"
    "id: part_of\n"
    "is_a: nothing_here\n"
    "\n"
    "[Term]\n"
    "id: X:3\n"
    "name: obsolete gone\n"
    "is_obsolete: true\n"
    "replaced_by: X:2\n";

static void test_fixture_tags(void **state) {
    (void)state;
    bmfm_obo o;
    assert_int_equal(bmfm_obo_parse(FIXTURE, strlen(FIXTURE), "fix.obo", &o), BMFM_OK);
    assert_int_equal(o.n_terms, 3);
    assert_int_equal(o.n_typedefs, 1);
    assert_int_equal(o.n_is_a, 1);
    const bmfm_obo_term *t = &o.terms[1];
    assert_string_equal(t->name, "child \"quoted\" thing");
    assert_int_equal(t->n_synonyms, 3);
    assert_string_equal(t->synonyms[0], "kid");
    assert_string_equal(t->synonyms[1], "offspring \"x\"");
    assert_string_equal(t->synonyms[2], "old style");
    assert_int_equal(t->n_alt_ids, 1);
    assert_string_equal(t->alt_ids[0], "X:20");
    assert_string_equal(t->is_a[0], "X:1");
    assert_int_equal(t->is_a_line[0], 17);
    assert_int_equal(t->line, 8);
    assert_true(o.terms[2].obsolete);
    assert_string_equal(o.terms[2].replaced_by, "X:2");
    bmfm_ontology *on;
    assert_int_equal(bmfm_ontology_build(&o, &on), BMFM_OK);
    assert_int_equal(on->n_nodes, 2);
    assert_int_equal(on->n_edges, 1);
    assert_int_equal(on->depth[1], 1);
    bmfm_ontology_free(on);
}

/* Parse (and build) text; expect failure whose message contains `want`. */
static void expect_error(const char *text, const char *want) {
    bmfm_obo o;
    bmfm_ontology *on = NULL;
    bmfm_status st = bmfm_obo_parse(text, strlen(text), "bad.obo", &o);
    if (st == BMFM_OK) st = bmfm_ontology_build(&o, &on);
    printf("  -> %s\n", bmfm_error_message());
    assert_int_equal(st, BMFM_E_INPUT);
    assert_null(on);
    assert_non_null(strstr(bmfm_error_message(), want));
    bmfm_error_clear();
}

static void test_malformed_files_name_the_line(void **state) {
    (void)state;
    expect_error("[Term]\nid: A:1\n\n[Term\nid: A:2\n", "bad.obo: line 4: unterminated stanza header");
    expect_error("[Term]\nid: A:1\nname: a\nsynonym: \"open EXACT []\n", "line 4: unterminated quote in synonym");
    expect_error("[Term]\nid: A:1\ndef: \"no end [x]\n", "line 3: unterminated quote in def");
    expect_error("[Term]\nid: A:1\n\n[Term]\nid: A:2\nis_a: A:1\nis_a: A:9 ! nowhere\n",
                 "line 7: dangling is_a: A:2 is_a A:9");
    expect_error("[Term]\nid: A:1\nis_a: A:3\n[Term]\nid: A:2\nis_a: A:1\n[Term]\nid: A:3\nis_a: A:2\n"
                 "[Term]\nid: A:4\nis_a: A:3\n",
                 ": is_a cycle: ");
    expect_error("[Term]\nid: A:1\nis_a: A:1\n", "line 3: is_a cycle: A:1 is_a itself");
    expect_error("[Term]\nname: no id\n[Term]\nid: A:1\n", "line 1: [Term] stanza has no id");
    expect_error("[Term]\nid: A:1\n[Term]\nid: A:1\n", "line 3: duplicate term id A:1 (first defined at line 1)");
    expect_error("[Term]\nid: A:1\njust words\n", "line 3: expected 'tag: value'");
    /* the cycle message cites an is_a line of the cycle (3, 6 or 9; not 12) */
    bmfm_obo o;
    bmfm_ontology *on;
    const char *cyc = "[Term]\nid: A:1\nis_a: A:3\n[Term]\nid: A:2\nis_a: A:1\n[Term]\nid: A:3\nis_a: A:2\n"
                      "[Term]\nid: A:4\nis_a: A:3\n";
    assert_int_equal(bmfm_obo_parse(cyc, strlen(cyc), "c.obo", &o), BMFM_OK);
    assert_int_equal(bmfm_ontology_build(&o, &on), BMFM_E_INPUT);
    const char *m = bmfm_error_message();
    assert_true(strstr(m, "line 3:") || strstr(m, "line 6:") || strstr(m, "line 9:"));
    assert_non_null(strstr(m, "A:1"));
    assert_null(strstr(m, "A:4"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cl_basic_counts_and_known_term),
        cmocka_unit_test(test_cl_simple_2026_counts),
        cmocka_unit_test(test_fixture_tags),
        cmocka_unit_test(test_malformed_files_name_the_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
