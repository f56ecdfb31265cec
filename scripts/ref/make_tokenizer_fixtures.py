#!/usr/bin/env python3
"""Reference token ids for Lumen's tokenizer tests (test_tokenizer.c), from Hugging Face
tokenizers built independently of Lumen's code: they share only the GGUF's vocabulary.

SmolLM2 (byte-level BPE) -> tests/fixtures/tokenizer_smollm2.txt
  The tokenizer is rebuilt with the `tokenizers` library from the vocabulary and merges
  stored in the GGUF, using the configuration of the model's published tokenizer.json
  (HuggingFaceTB/SmolLM2-135M-Instruct), which this reproduces:

    model          BPE(vocab, merges), no unk token, no dropout
    normalizer     none
    pre_tokenizer  Sequence[Digits(individual_digits=True),
                            ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)]
    decoder        ByteLevel
    added tokens   the CONTROL tokens of the GGUF (token_type 3) as special tokens

Gemma 3 270M (SentencePiece, tokenizer.ggml.model = llama) -> tests/fixtures/tokenizer_gemma3.txt
  google/gemma-3-270m cannot be reached from here (only PyPI can), so its tokenizer.json
  is rebuilt from the GGUF by Hugging Face `transformers`' own GGUF converter
  (transformers.integrations.gguf.gguf_tokenizer_mapping.convert_gguf_tokenizer, the code
  behind AutoTokenizer.from_pretrained(dir, gguf_file=...); called directly because its
  GGUF *reader* imports torch, so the metadata dict is filled here with gguf.GGUFReader).
  That converter makes transformers' GemmaTokenizer:

    model          BPE(vocab, merges derived from the vocabulary and ordered by the
                   tokens' positions in the file), byte_fallback=True, unk <unk>
    normalizer     Replace(" " -> "\u2581")   (no prefix space: Gemma adds none)
    pre_tokenizer  Split(" ", merged_with_previous)  (a no-op after the normalizer)
    decoder        Sequence[Replace("\u2581" -> " "), ByteFallback, Fuse]
    added tokens   CONTROL tokens as special tokens, USER_DEFINED tokens ("\n", "\t\t",
                   "<table>", ...) as plain added tokens; runs of spaces (stored as real
                   spaces in the GGUF) become the vocabulary entries "\u2581\u2581"...

  As a second, unrelated opinion every Gemma prompt is also encoded with Google's
  `sentencepiece` library (the tokenizer Gemma was trained with) from a ModelProto built
  from the GGUF's pieces, scores and types (BPE model, byte_fallback, identity
  normalizer, no dummy prefix, whitespace escaped); the script stops if the two disagree
  on a prompt that has no control-token text (sentencepiece does not cut those out).

  Known divergence, kept out of the prompts: a run of more than 31 spaces (the longest
  user-defined space token). The converter's BPE splits 40 spaces as 16 + 24 (its derived
  merges join pairs first); sentencepiece, llama.cpp and Lumen cut the longest
  user-defined token first, 31 + 9. Lumen follows sentencepiece, Gemma's own tokenizer.
  On 20,000 random texts mixing words, whitespace runs, added-token texts, U+2581 and
  random code points, Lumen's ids equalled the converter's on every text without such a
  run, and sentencepiece's on every text without control-token text.

  Neither reads anything of Lumen: Lumen's SPM tokenizer (runtime/tokenizer_spm.c) merges
  by score over UTF-8 characters in C; the references are the `tokenizers` Rust BPE with
  derived merges, and sentencepiece's C++ BPE.

Output: one line per prompt, the prompt's UTF-8 bytes as hex, a tab, then the ids
separated by spaces; the Gemma file has a third tab-separated field, the hex of HF's
decode of those ids (skip_special_tokens=False), which Lumen's detokenize must equal.
Prompts marked special contain control-token text and are encoded with special tokens
recognised (parse_special=true); the others contain none, so they give the same ids
either way (HF always cuts its added tokens out first). Lines starting with "#" are
comments: "# special" marks the next line as parse_special.

Gemma prompts are the SmolLM2 ones (the special ones then are plain text) plus a few that
reach Gemma's own added tokens.

Versions used: gguf 0.23.3, tokenizers 0.23.3, transformers 5.23.0, sentencepiece 0.2.3
(pip install gguf tokenizers transformers sentencepiece protobuf; no torch needed).
Reading Gemma's 262,144-token vocabulary takes about half a minute.

Usage: python3 scripts/ref/make_tokenizer_fixtures.py [smollm2|gemma3 ...]   (default: both)
"""
import sys
from pathlib import Path

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
FIXTURES = ROOT / "tests" / "fixtures"

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


# Extra Gemma prompts: its control tokens (parse_special) and user-defined added tokens.
GEMMA_PROMPTS = [
    (True, "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n"
           "<start_of_turn>model\n"),
    (False, "<table><tr><td>1</td></tr></table>\n\n<h1>Title</h1> <b>bold</b>"),
    # runs of up to 31 spaces are one user-defined token; longer runs are left out: there
    # the converter's BPE splits 40 spaces as 16 + 24, sentencepiece (and llama.cpp, and
    # Lumen) as 31 + 9
    (False, "if x:\n\t\treturn  y\n\n\n\n" + " " * 31 + "z" + " " * 17 + "w"),
    (True, "<bos>text<eos> <pad><unused0>[multimodal]<start_of_image>"),
    (False, "byte fallback: \x00\x01\x7f \U0010fffd \U000e0001 \u2029"),
]


def build_smollm2(path):
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


def gemma3_metadata(path):
    """The dict transformers' get_gguf_tokenizer would make (tokenizer.ggml.* renamed)."""
    f = GGUFReader(str(path)).fields
    d = {
        "tokenizer_type": f["tokenizer.ggml.model"].contents(),
        "pre_tokenizer_type": f["tokenizer.ggml.pre"].contents(),
        "tokens": f["tokenizer.ggml.tokens"].contents(),
        "scores": f["tokenizer.ggml.scores"].contents(),
        "token_type": f["tokenizer.ggml.token_type"].contents(),
        "bos_token_id": f["tokenizer.ggml.bos_token_id"].contents(),
        "eos_token_id": f["tokenizer.ggml.eos_token_id"].contents(),
        "unk_token_id": f["tokenizer.ggml.unknown_token_id"].contents(),
        "pad_token_id": f["tokenizer.ggml.padding_token_id"].contents(),
        "add_prefix_space": f["tokenizer.ggml.add_space_prefix"].contents(),
    }
    assert d["tokenizer_type"] == "llama" and not d["add_prefix_space"]
    return d


def build_gemma3(meta):
    from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer

    tok, _ = convert_gguf_tokenizer("gemma3", meta)
    return tok


def build_gemma3_sentencepiece(meta):
    """Google's sentencepiece on a ModelProto made from the GGUF's pieces (cross-check)."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.vocab_size = len(meta["tokens"])
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id = meta["unk_token_id"]
    m.trainer_spec.bos_id = meta["bos_token_id"]
    m.trainer_spec.eos_id = meta["eos_token_id"]
    m.trainer_spec.pad_id = meta["pad_token_id"]
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = False
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    for i, (t, sc, ty) in enumerate(zip(meta["tokens"], meta["scores"], meta["token_type"])):
        p = m.pieces.add()
        # the GGUF stores user-defined runs of spaces with real spaces; SentencePiece
        # matches user-defined pieces after escaping
        p.piece = t.replace(" ", "\u2581") if ty == 4 else t
        p.score = sc
        p.type = pb.ModelProto.SentencePiece.UNKNOWN if i == meta["unk_token_id"] else ty
    return spm.SentencePieceProcessor(model_proto=m.SerializeToString())


def write(out, title, lines):
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join([title] + lines) + "\n")


def make_smollm2():
    out = FIXTURES / "tokenizer_smollm2.txt"
    tok = build_smollm2(MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf")
    lines = []
    for special, text in PROMPTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        if "\x04" not in text:
            assert tok.decode(ids, skip_special_tokens=False) == text
        if special:
            lines.append("# special")
        lines.append(text.encode("utf-8").hex() + "\t" + " ".join(str(i) for i in ids))
    write(out, "# SmolLM2 tokenizer reference ids: made by scripts/ref/make_tokenizer_fixtures.py",
          lines)
    print(f"wrote {len(PROMPTS)} prompts to {out}")


def make_gemma3():
    out = FIXTURES / "tokenizer_gemma3.txt"
    meta = gemma3_metadata(MODELS / "gemma-3-270m-q4_k_m.gguf")
    tok = build_gemma3(meta)
    sp = build_gemma3_sentencepiece(meta)
    control = [t for t, ty in zip(meta["tokens"], meta["token_type"]) if ty == 3]
    prompts = [(False, t) for _, t in PROMPTS] + GEMMA_PROMPTS
    lines = []
    for special, text in prompts:
        ids = tok.encode(text, add_special_tokens=False).ids
        has_control = any(c in text for c in control)
        assert special == has_control, f"mark {text!r} special iff it has control text"
        if not has_control:
            sp_ids = sp.encode(text)
            assert sp_ids == ids, f"HF and sentencepiece differ on {text!r}:\n{ids}\n{sp_ids}"
        back = tok.decode(ids, skip_special_tokens=False)
        if special:
            lines.append("# special")
        lines.append(text.encode("utf-8").hex() + "\t" + " ".join(str(i) for i in ids) + "\t"
                     + back.encode("utf-8").hex())
    write(out, "# Gemma 3 tokenizer reference ids and decodes: made by "
          "scripts/ref/make_tokenizer_fixtures.py", lines)
    print(f"wrote {len(prompts)} prompts to {out}")


def main():
    which = sys.argv[1:] or ["smollm2", "gemma3"]
    for w in which:
        {"smollm2": make_smollm2, "gemma3": make_gemma3}[w]()


if __name__ == "__main__":
    main()
