#!/usr/bin/env python3
"""Trains the kit's SentencePiece BPE tokenizer (Llama settings) and writes it as the Hugging Face
tokenizer.json files Llama 2, Mistral, TinyLlama and Phi-3 ship, with golden encodings computed by
SentencePiece itself.

    /usr/bin/python3 tools/make_sentencepiece_tokenizer.py tests/Fixtures

writes two tokenizer folders that share one trained model:
  spbpe-legacy/     tokenizer.json in the older form: normalizer Sequence[Prepend("▁"), Replace(" ", "▁")],
                    no pre-tokenizer, merges as "left right" strings (what TinyLlama and Llama 2 ship)
  spbpe-metaspace/  tokenizer.json in the newer form (transformers' LlamaConverter with legacy=False): no
                    normalizer, pre-tokenizer Metaspace(prepend_scheme "first", split false), merges as
                    [left, right] pairs
Each holds tokenizer.model (the SentencePiece model), tokenizer.json, tokenizer_config.json
(add_bos_token true) and golden-tokenizer.json: for every test string the ids, the pieces and the
text that SentencePiece decodes from those ids.

How Hugging Face's tokenizer.json semantics relate to SentencePiece's (the reference):
  * Segmentation. SentencePiece BPE repeatedly merges the adjacent pair whose concatenation is the
    highest-scoring piece (leftmost on ties); tokenizers' BPE merges the pair with the lowest merge
    rank (leftmost on ties). The merges below are ordered the way transformers' generate_merges orders
    them (by the merged piece's score, descending, every split of a piece whose halves are pieces),
    so both pick the same merges. Characters outside the vocabulary become <0xXX> byte pieces in both.
  * Prefix space. SentencePiece (add_dummy_prefix, remove_extra_whitespaces false) always prepends
    "▁" to non-empty text; so does the legacy normalizer's Prepend. The Metaspace pre-tokenizer
    prepends "▁" only when the text does not already start with one: " Hello" is "▁▁Hello" for
    SentencePiece and the legacy file but "▁Hello" for the Metaspace file. The two files therefore
    differ for text that starts with a space, and the Metaspace golden is SentencePiece's BPE applied
    to the string the Metaspace pre-tokenizer produces (a copy of the model with add_dummy_prefix off).
  * Special tokens. Hugging Face matches added tokens (<unk>, <s>, </s>) inside the text; SentencePiece
    treats "<s>" in text as three characters. special_cases in the golden gives Hugging Face's ids,
    built from SentencePiece's encodings of the pieces between the special tokens (the legacy
    normalizer prefixes every piece, Metaspace "first" only the one at the start of the text).
  * Decoding. Both turn "▁" into spaces, join byte pieces into UTF-8 and drop the first leading space.
    For byte runs that are not valid UTF-8, tokenizers emits one U+FFFD per byte of the run while
    SentencePiece replaces only the invalid bytes; the goldens hold complete encodings only.
"""
import argparse
import io
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as model_pb2
except ImportError:  # pragma: no cover - message for people setting up the kit
    sys.exit("make_sentencepiece_tokenizer: sentencepiece is missing. Install Debian's package with:\n"
             "    sudo apt-get install python3-sentencepiece\n"
             "and run the kit with /usr/bin/python3.")

import prepare_corpus  # noqa: E402

VOCAB_SIZE = 2000
METASPACE = "\u2581"

# Llama 2's trainer and normalizer settings (its tokenizer.model's trainer_spec), at a small vocabulary.
TRAINER = dict(
    model_type="bpe", vocab_size=VOCAB_SIZE, character_coverage=0.99995, byte_fallback=True,
    split_digits=True, allow_whitespace_only_pieces=True, split_by_unicode_script=True,
    split_by_whitespace=True, split_by_number=True, treat_whitespace_as_suffix=False,
    max_sentencepiece_length=16, normalization_rule_name="identity", add_dummy_prefix=True,
    remove_extra_whitespaces=False, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
    unk_surface=" \u2047 ", vocabulary_output_piece_score=True, hard_vocab_limit=True,
    num_threads=2, input_sentence_size=0, shuffle_input_sentence=False,
)

# Written for the kit (not quoted from anywhere): digits, accented Latin, Greek, Cyrillic and a few CJK
# characters, so some non-ASCII characters are whole pieces while others (emoji, most CJK) need bytes;
# runs of spaces, so whitespace-only pieces such as "▁▁" exist as in Llama's vocabulary.
SUPPLEMENT = [
    "In the year 1611 the translation was printed, and 400 years later it is read still.",
    "Chapter 3, verse 16: 25 men and 7 women, 1234 sheep and 56789 goats.",
    "The café served crème brûlée; a naïve visitor wrote a résumé in Zürich über the Straße.",
    "Señor Muñoz met François and Zoë at the façade of the théâtre.",
    "Ἐν ἀρχῇ ἦν ὁ λόγος, καὶ ὁ λόγος ἦν πρὸς τὸν θεόν.",
    "В начале было Слово, и Слово было у Бога.",
    "日本 中文 人 大 山 水 天 地",
    "    Four spaces open this line,  and two  spaces  part  these  words.",
    "        Eight spaces indent this one.",
]
SUPPLEMENT_REPEATS = 300

TEST_STRINGS = [
    # ASCII
    "Hello world", "hello", "HELLO", "Hello, World!", "a", "I", "?", "...",
    "In the beginning God created the heaven and the earth.",
    "The quick brown fox jumps over the lazy dog.",
    "And the LORD said unto Moses,",
    "it's they're we'll I'd don't",
    "e-mail me@example.com or visit https://example.org/path?q=1",
    "(parenthesis) [brackets] {braces} <angles>",
    "#hashtag @mention $money %percent ^caret &ampersand *star",
    "~tilde `backtick` |pipe| \\backslash/ _underscore_",
    "quote \"double\" 'single'",
    # spaces
    " leading space", "  two leading spaces", "trailing space ", "trailing spaces   ",
    "multiple   inner    spaces", " ", "   ", "a b  c   d",
    # newlines and tabs
    "line one\nline two", "\n", "\n\n", "ends with newline\n", "\ttab first", "tab\tinside",
    "mixed \t \n whitespace", "windows\r\nline",
    # digits
    "1234567890", "3.14159", "year 2024", "v1.2.3", "100%", "0", "phone 555-0123",
    # accented and other scripts
    "café", "naïve résumé", "Zürich über Straße", "crème brûlée", "ñandú", "Ελληνικά", "Привет мир",
    # CJK
    "日本語", "中文字符", "日本語のテキスト", "한국어",
    # emoji and symbols (multi-byte byte fallback, zero-width joiners, variation selectors)
    "😀", "emoji 😀🎉 party", "👍🏽", "❤️", "family 👨\u200d👩\u200d👧", "math ∑ ∫ √ ∞", "arrows → ← ↑",
    "currency € £ ¥",
    # the metaspace character itself, which both tools treat like a space
    METASPACE + " literal metaspace",
    # mixed
    "Unicode: héllo wörld, 日本語のテキスト, emoji 😀🎉, Ελληνικά",
    "For God so loved the world, that he gave his only begotten Son, that whosoever believeth in him "
    "should not perish, but have everlasting life.",
    # empty
    "",
]

# Hugging Face matches these added tokens inside the text; SentencePiece does not.
SPECIAL_CASES = ["<s> looks special", "before</s>after", "a <unk> b", "<s>"]


def corpus():
    text = prepare_corpus.read_bible_text(None)
    verses = [verse for _, verse in prepare_corpus.split_verses(text)]
    return verses + SUPPLEMENT * SUPPLEMENT_REPEATS


def train():
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus()), model_writer=buffer, **TRAINER)
    return buffer.getvalue()


def processor(model_bytes, add_dummy_prefix=True):
    proto = model_pb2.ModelProto()
    proto.ParseFromString(model_bytes)
    proto.normalizer_spec.add_dummy_prefix = add_dummy_prefix
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(proto.SerializeToString())
    return sp, proto


def generate_merges(vocab, vocab_scores):
    """transformers' generate_merges with piece scores: every split of a piece whose halves are both
    pieces, ordered by the piece's score (descending), then longer left and right halves first (the
    reverse of its ascending key); ties keep the (left id, right id) order."""
    scores = dict(vocab_scores)
    merges = []
    for piece, score in scores.items():
        local = [(piece[:i], piece[i:], score) for i in range(1, len(piece)) if piece[:i] in vocab and piece[i:] in vocab]
        merges.extend(sorted(local, key=lambda m: (vocab[m[0]], vocab[m[1]])))
    merges = sorted(merges, key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(left, right) for left, right, _ in merges]


def added_token(token_id, content):
    return {"id": token_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def tokenizer_json(proto, form):
    pieces = [(p.piece, p.score) for p in proto.pieces]
    vocab = {piece: i for i, (piece, _) in enumerate(pieces)}
    merges = generate_merges(vocab, pieces)
    legacy = form == "legacy"
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added_token(0, "<unk>"), added_token(1, "<s>"), added_token(2, "</s>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": METASPACE},
            {"type": "Replace", "pattern": {"String": " "}, "content": METASPACE},
        ]} if legacy else None,
        "pre_tokenizer": None if legacy else {"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": "first", "split": False},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": METASPACE}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
            "vocab": vocab,
            # older tokenizers write "left right" strings, newer ones [left, right] pairs: one file of each
            "merges": [f"{left} {right}" for left, right in merges] if legacy else [[left, right] for left, right in merges],
        },
    }


def tokenizer_config(form, max_length):
    def entry(content):
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
    return {
        "add_bos_token": True, "add_eos_token": False,
        "added_tokens_decoder": {"0": entry("<unk>"), "1": entry("<s>"), "2": entry("</s>")},
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None,
        "clean_up_tokenization_spaces": False, "legacy": form == "legacy", "model_max_length": max_length,
        "sp_model_kwargs": {}, "spaces_between_special_tokens": False, "tokenizer_class": "LlamaTokenizer",
        "use_default_system_prompt": False,
    }


def metaspace_pretokenized(text, at_start):
    """What the Metaspace(prepend_scheme "first", split false) pre-tokenizer makes of a piece of text."""
    replaced = text.replace(" ", METASPACE)
    return replaced if replaced.startswith(METASPACE) or not at_start else METASPACE + replaced


def reference_ids(sp, raw_sp, text, form, at_start=True):
    """SentencePiece's ids for what the tokenizer.json of `form` feeds its BPE model."""
    if text == "":
        return []
    if form == "legacy":
        return sp.encode(text)
    return raw_sp.encode(metaspace_pretokenized(text, at_start))


def special_case_ids(sp, raw_sp, text, form, specials):
    ids, rest, at_start = [], text, True
    while rest:
        position, token = min(((rest.find(t), t) for t in specials if t in rest), default=(-1, None))
        if token is None:
            return ids + reference_ids(sp, raw_sp, rest, form, at_start)
        ids += reference_ids(sp, raw_sp, rest[:position], form, at_start) + [specials[token]]
        rest, at_start = rest[position + len(token):], False
    return ids


def golden(sp, raw_sp, form, model_bytes):
    specials = {"<unk>": 0, "<s>": 1, "</s>": 2}
    strings = []
    for text in TEST_STRINGS:
        ids = reference_ids(sp, raw_sp, text, form)
        strings.append({"text": text, "ids": ids, "pieces": [sp.id_to_piece(i) for i in ids], "decoded": sp.decode(ids)})
    cases = [{"text": text, "ids": special_case_ids(sp, raw_sp, text, form, specials)} for text in SPECIAL_CASES]
    return {
        "form": form, "vocab_size": sp.get_piece_size(), "bos_id": sp.bos_id(), "eos_id": sp.eos_id(), "unk_id": sp.unk_id(),
        "sentencepiece_version": spm.__version__,
        "reference": "ids: SentencePiece's encode of the text" if form == "legacy" else
                     "ids: SentencePiece's BPE (add_dummy_prefix off) on the Metaspace pre-tokenizer's output",
        "strings": strings, "special_cases": cases,
    }


def check_consistency(sp, raw_sp):
    """The two reference routes must agree wherever the legacy form and SentencePiece coincide."""
    for text in TEST_STRINGS:
        if text:
            direct = sp.encode(text)
            via_raw = raw_sp.encode(METASPACE + text.replace(" ", METASPACE))
            if direct != via_raw:
                sys.exit(f"make_sentencepiece_tokenizer: SentencePiece disagrees with itself on {text!r}: {direct} vs {via_raw}")


def write_json(path, content, indent=None):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(content, f, ensure_ascii=False, indent=indent)
        f.write("\n")


README = """# {name}

The kit's SentencePiece BPE tokenizer ({vocab} pieces, trained by tools/make_sentencepiece_tokenizer.py with Llama 2's
trainer settings on the King James Bible plus a few written lines with digits, accents and CJK) in the
{description} tokenizer.json form. tokenizer.model is the SentencePiece model itself; golden-tokenizer.json holds
SentencePiece's ids, pieces and decoded text for {count} test strings and Hugging Face's ids for text with special
tokens. See the script's docstring for how the tokenizer.json semantics relate to SentencePiece's.
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--max-length", type=int, default=128, help="model_max_length in tokenizer_config.json")
    args = parser.parse_args()

    model_bytes = train()
    sp, proto = processor(model_bytes)
    raw_sp, _ = processor(model_bytes, add_dummy_prefix=False)
    check_consistency(sp, raw_sp)
    descriptions = {"legacy": "older (normalizer Prepend + Replace)", "metaspace": "newer (Metaspace pre-tokenizer, prepend_scheme first)"}
    for form in ("legacy", "metaspace"):
        folder = os.path.join(args.out_dir, f"spbpe-{form}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "tokenizer.model"), "wb") as f:
            f.write(model_bytes)
        write_json(os.path.join(folder, "tokenizer.json"), tokenizer_json(proto, form))
        write_json(os.path.join(folder, "tokenizer_config.json"), tokenizer_config(form, args.max_length), indent=2)
        write_json(os.path.join(folder, "golden-tokenizer.json"), golden(sp, raw_sp, form, model_bytes), indent=1)
        with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
            f.write(README.format(name=f"spbpe-{form}", vocab=sp.get_piece_size(), description=descriptions[form], count=len(TEST_STRINGS)))
        fallback = sum(1 for t in TEST_STRINGS for i in reference_ids(sp, raw_sp, t, form) if sp.is_byte(i))
        print(f"make_sentencepiece_tokenizer: {folder}: {sp.get_piece_size()} pieces, "
              f"{len(TEST_STRINGS)} golden strings ({fallback} byte-fallback ids)")


if __name__ == "__main__":
    main()
