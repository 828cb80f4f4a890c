"""Write tokenizer fixtures in the style of BMFM's protein_coding gene tokenizer.

usage: make_tokenizer.py GENES.json OUTDIR
OUTDIR/tokenizer.json  HF WordLevel: [UNK]=0 [SEP]=1 [PAD]=2 [CLS]=3 [MASK]=4
                       [CLS_0..CLS_30]=5..35 [S]=36 [T]=37, genes from 38 in list order;
                       specials repeated in added_tokens (special: true)
OUTDIR/txt/vocab.txt   the same tokens one a line (id = line number)
OUTDIR/json/vocab.json {token: id}
Prints the number of tokens.
"""
import json, os, sys

genes = json.load(open(sys.argv[1]))
out = sys.argv[2]
specials = ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"] + [f"[CLS_{i}]" for i in range(31)] + ["[S]", "[T]"]
tokens = specials + list(genes)
vocab = {t: i for i, t in enumerate(tokens)}
assert len(vocab) == len(tokens)
tok = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for i, t in enumerate(specials)
    ],
    "normalizer": None,
    "pre_tokenizer": {"type": "WhitespaceSplit"},
    "post_processor": None,
    "decoder": None,
    "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
}
os.makedirs(os.path.join(out, "txt"), exist_ok=True)
os.makedirs(os.path.join(out, "json"), exist_ok=True)
json.dump(tok, open(os.path.join(out, "tokenizer.json"), "w"), indent=2)
open(os.path.join(out, "txt", "vocab.txt"), "w").write("\n".join(tokens) + "\n")
json.dump(vocab, open(os.path.join(out, "json", "vocab.json"), "w"))
print(len(tokens))
