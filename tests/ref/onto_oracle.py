"""onto_oracle.py - independent Python computation of the Cell Ontology facts
that tests/test_ontology.c checks: counts of an OBO file, the is_a DAG the
reference builds (non-obsolete terms, is_a edges to non-obsolete parents),
pruning to a set of observed cell types (repeatedly drop leaves that are not
observed, as build_cell_ontology_graph.py::remove_dead_leaves does), the
sorted leaf list (get_label_dictionary) and the leaves under each observed
label (find_leaves), and shortest-path depths of a lineage.

Usage: onto_oracle.py OBO OUT.txt [--h5ad FILE --column COL | --ids FILE] [--lineage ID]
The OBO is parsed here with a few lines of plain Python on purpose (no
pronto): it shares no code with src/io/obo.c.
"""
import argparse
from collections import deque


def parse(path):
    terms, order, cur = {}, [], None
    n_isa = 0
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("["):
            cur = None
            if line.strip() == "[Term]":
                cur = {"is_a": [], "obsolete": False, "name": ""}
            continue
        if cur is None:
            continue
        tag, _, val = line.partition(": ")
        if tag == "id":
            cur["id"] = val.strip()
            terms[cur["id"]] = cur
            order.append(cur["id"])
        elif tag == "name":
            cur["name"] = val.strip()
        elif tag == "is_a":
            cur["is_a"].append(val.split()[0])
            n_isa += 1
        elif tag == "is_obsolete" and val.strip() == "true":
            cur["obsolete"] = True
    return terms, order, n_isa


def build(terms):
    nodes = {t for t, v in terms.items() if not v["obsolete"] and t != "unknown"}
    children = {t: set() for t in nodes}
    parents = {t: set() for t in nodes}
    for t in nodes:
        for p in terms[t]["is_a"]:
            if p in nodes and p != t:
                children[p].add(t)
                parents[t].add(p)
    return nodes, parents, children


def prune(nodes, parents, children, observed):
    nodes = set(nodes)
    children = {t: set(c) for t, c in children.items()}
    while True:
        dead = [t for t in nodes if not children[t] and t not in observed]
        if not dead:
            break
        for t in dead:
            nodes.discard(t)
            for p in parents[t]:
                if p in children:
                    children[p].discard(t)
            del children[t]
    return nodes, children


def find_leaves(t, children):
    if t not in children:
        return []
    seen, q = {t}, deque([t])
    while q:
        v = q.popleft()
        for c in children[v]:
            if c not in seen:
                seen.add(c)
                q.append(c)
    return sorted(v for v in seen if not children[v])


def depths(nodes, parents, children):
    roots = [t for t in nodes if not parents[t]]
    d = {r: 0 for r in roots}
    q = deque(roots)
    while q:
        v = q.popleft()
        for c in children[v]:
            if c not in d:
                d[c] = d[v] + 1
                q.append(c)
    return d, roots


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("obo")
    ap.add_argument("out")
    ap.add_argument("--h5ad")
    ap.add_argument("--column")
    ap.add_argument("--ids")
    ap.add_argument("--lineage")
    a = ap.parse_args()
    terms, order, n_isa = parse(a.obo)
    nodes, parents, children = build(terms)
    d, roots = depths(nodes, parents, children)
    out = []
    out.append("terms %d" % len(terms))
    out.append("obsolete %d" % sum(v["obsolete"] for v in terms.values()))
    out.append("is_a %d" % n_isa)
    out.append("nodes %d" % len(nodes))
    out.append("edges %d" % sum(len(c) for c in children.values()))
    out.append("roots %d" % len(roots))
    out.append("leaves %d" % sum(1 for t in nodes if not children[t]))
    out.append("maxdepth %d" % max(d.values()))
    labels = None
    if a.h5ad:
        import anndata

        ad = anndata.read_h5ad(a.h5ad, backed="r")
        labels = sorted(set(str(x) for x in ad.obs[a.column].unique()))
    elif a.ids:
        labels = sorted(set(l.strip() for l in open(a.ids) if l.strip() and not l.startswith("#")))
    if labels is not None:
        observed = set(labels)
        kept, kchildren = prune(nodes, parents, children, observed)
        leaves = sorted(t for t in kept if not kchildren[t])
        out.append("labels %d" % len(labels))
        out.append("mapped %d" % sum(1 for l in labels if l in nodes))
        out.append("kept %d" % len(kept))
        out.append("K %d" % len(leaves))
        for l in leaves:
            out.append("leaf %s" % l)
        for l in labels:
            out.append("mask %s %s" % (l, " ".join(find_leaves(l, kchildren)) or "-"))
    if a.lineage:
        anc, q = {a.lineage}, deque([a.lineage])
        while q:
            v = q.popleft()
            for p in parents[v]:
                if p not in anc:
                    anc.add(p)
                    q.append(p)
        for t in sorted(anc, key=lambda t: (d[t], t)):
            out.append("lineage %d %s %s" % (d[t], t, terms[t]["name"]))
    open(a.out, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
