#!/usr/bin/env python3
"""Reference token ids for SmolLM2's tokenizer, written as a fixture for test_tokenizer.c.

The Hugging Face tokenizer is rebuilt with the `tokenizers` library from the vocabulary
and merges stored in the GGUF, using the configuration of the model's published
tokenizer.json (HuggingFaceTB/SmolLM2-135M-Instruct), which this reproduces:

  model          BPE(vocab, merges), no unk token, no dropout
  normalizer     none
  pre_tokenizer  Sequence[Digits(individual_digits=True),
                          ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)]
  decoder        ByteLevel
  added tokens   the CONTROL tokens of the GGUF (token_type 3) as special tokens

Output (tests/fixtures/tokenizer_smollm2.txt): one line per prompt, the prompt's UTF-8
bytes as hex, a tab, then the ids separated by spaces. Prompts whose name starts with
"special:" are encoded with special tokens recognised (parse_special=true); the others
too, as HF always splits added tokens out first - those prompts contain no special text.
Lines starting with "#" are comments: "# special" marks the next line as parse_special.

Usage: python3 scripts/ref/make_tokenizer_fixtures.py [model.gguf] [out.txt]
"""
import sys
from pathlib import Path

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = ROOT / "tests" / "fixtures" / "tokenizer_smollm2.txt"

LONG = (
    "The quick brown fox jumps over the lazy dog. Meanwhile, in 2024, researchers "
    "trained a 135-million-parameter model on 2 trillion tokens; its perplexity was "
    "remarkably low (about 12.5). \"Small models,\" they wrote, \"can't do everything, "
    "but they're fast!\" Tokenizers split text into pieces -- words, numbers, "
    "punctuation -- and merge frequent byte pairs until the vocabulary is full."
)

# (parse_special, text)
PROMPTS = [
    (False, "Hello world"),
    (False, "The capital of France is Paris."),
    (False, "def f(x):\n    if x > 0:\n        return x * 2\n\treturn -1\n"),
    (False, "3.14159 and 1234567"),
    (False, "Café, naïve résumé, Ångström, façade"),
    (False, "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇫🇷"),
    (False, "中文分词测试：你好，世界！日本語のテキスト"),
    (False, "مرحبا بالعالم، كيف حالك؟"),
    (False, "a   b\t\tc\n\n\n"),
    (False, "   leading and trailing   "),
    (False, "I'm can't we'll they've she'd it's you're"),
    (True, "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"),
    (False, ""),
    (False, LONG),
    (False, "x = [1, 2, 3]  # list\nprint(\"%d\" % len(x))"),
    (False, "Ωμέγα Привет мир ½ ² ٣ Ⅻ"),
    (False, " "),
    (False, "\n"),
    (False, "don't DON'T Don'T 'quoted' ''"),
    (False, "tabs\tand\r\nCRLF lines\r\n"),
    (True, "<|endoftext|>text<repo_name>x<file_sep> y <|im_end|>"),
    (False, "https://example.com/path?q=1&r=2#frag"),
    # bytes the vocab lacks (0x04, 0x06, the 0xF1 lead byte) are dropped by HF's BPE
    (False, "ctrl\x04.\x06. x\U00050000y!"),
]


def build(path):
    r = GGUFReader(str(path))
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    merges = r.fields["tokenizer.ggml.merges"].contents()
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types)
                if ty == 3]
    tok.add_special_tokens(specials)
    return tok


def main():
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else MODEL
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else OUT
    tok = build(model)
    lines = ["# SmolLM2 tokenizer reference ids: made by scripts/ref/make_tokenizer_fixtures.py"]
    for special, text in PROMPTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        if "\x04" not in text:
            assert tok.decode(ids, skip_special_tokens=False) == text
        if special:
            lines.append("# special")
        lines.append(text.encode("utf-8").hex() + "\t" + " ".join(str(i) for i in ids))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(PROMPTS)} prompts to {out}")


if __name__ == "__main__":
    main()
