#!/usr/bin/env python3
"""Writes the tokenizer parity corpus: tests/Fixtures/tokenizer-corpus.jsonl.

    python3 tools/make_tokenizer_corpus.py tests/Fixtures/tokenizer-corpus.jsonl

One JSON string per line (so a text may hold newlines, tabs and carriage returns). Every text is
written here or generated here from a fixed seed: handwritten English, code, numbers, white-space
runs, CJK, Arabic, Hebrew, Hindi, Thai, Cyrillic, Greek, emoji, combining marks, case-folding
edge cases, control characters, the special-token strings of the common model families and
strings that look like them, then seeded random mixes of all of these. The parity tests encode and
decode every line with MLNetGpt and with Hugging Face's Rust tokenizers and require equal results.
"""
import json
import random
import re
import sys
import unicodedata

ENGLISH = r"""
The quick brown fox jumps over the lazy dog.
In the beginning was the word, and the word was short.
She sells sea shells by the sea shore; the shells she sells are surely seashells.
It's a truth universally acknowledged that tokenizers disagree at the edges.
We'll see what they're doing, and I'd say you've got to check it.
The peer-to-peer protocol uses machine-generated HTML and/or plain text.
Copyright (c) the authors, all rights reserved, and/or dedications apply.
Mr. Smith's dog barked at 3:45 p.m. on Jan. 2nd, 2024.
"Quoted text," he said, 'and single quotes too.'
Don't stop; won't stop; can't stop; shouldn't've stopped.
THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!
e-mail: someone@example.com, web: https://example.org/path?q=1&r=two#frag
A sentence ending with many dots...... and question marks???!!!
Tabs\tbetween\twords\tand\ttrailing\t
Line one\nLine two\n\nLine four after a blank line
Windows line\r\nendings\r\nhere\r\n
Old Mac\rline\rendings
Hyphen-ated, en–dash, em—dash, minus −, and a non-breaking\u00a0space.
Ellipsis… and “curly quotes” and ‘single curly’ and «guillemets».
Bullet points: • one • two • three ◦ sub-item ▪ square
Math: x² + y² = z²; ∑ᵢ aᵢ ≤ ∞; √2 ≈ 1.41421; α β γ δ ε
Currency: $100, €250.50, £30, ¥5000, ₹199, ₿0.001
Trademarks™ and registered® and copyright© signs.
The year 1999 was followed by 2000, then 2001 and 20001.
Phone: +1 (555) 123-4567; ext. 89
Version 3.14.159-beta+build.2653 was released.
CamelCaseIdentifiersAndSnake_case_names_and_kebab-case-names
ALLCAPS lowercase MiXeD cAsE Title Case
a b c d e f g h i j k l m n o p q r s t u v w x y z
A B C D E F G H I J K L M N O P Q R S T U V W X Y Z
0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000 10000 100000 1000000
I'M HERE, YOU'RE THERE, THEY'VE GONE, WE'LL SEE, HE'D KNOW, IT'S SO.
i'm here, you're there, they've gone, we'll see, he'd know, it's so.
I'M i'M I'm i'm 'S 's 'T 't 'RE 're 'VE 've 'M 'm 'LL 'll 'D 'd
Kelvin sign: 5 K and 'K and long s: 'ſ and ſtraße.
The café served crème brûlée and a piña colada to the naïve façade.
Ångström, Øresund, Łódź, Dvořák, Erdős, Şişli, Ţara, Ðakovo, Þórr.
Straße, STRASSE, ß, ẞ; İstanbul, ıi; Σίσυφος, ΣΊΣΥΦΟΣ.
The ﬁnal ﬂight had ﬀ and ﬃ ligatures; ｆｕｌｌｗｉｄｔｈ ＡＢＣ１２３.
Superscripts ¹²³ and subscripts ₁₂₃ and fractions ½ ¼ ¾ ⅓ ⅞.
Roman numerals Ⅰ Ⅱ Ⅲ Ⅳ Ⅻ ⅰ ⅱ ⅲ and circled ① ② ③ Ⓐ Ⓑ ⓐ ⓑ.
Squared letters 🄰 🄱 🅐 🅑 🅰 🅱 and regional indicators 🇦 🇧.
Zero-width joiner\u200dand non-joiner\u200cand zero-width space\u200bhere.
Byte order mark\ufeffinside and a replacement character \ufffd here.
Right-to-left mark\u200f and left-to-right mark\u200e and bidi \u202eoverride\u202c.
Control characters: \u0000 null, \u0001 start, \u0007 bell, \u001b escape, \u007f delete.
Vertical tab\u000band form feed\u000cand next line\u0085and line separator\u2028and paragraph\u2029end.
Ideographic space\u3000and thin\u2009space and hair\u200aspace and narrow\u202fspace.
"""

CODE = [
    "def fibonacci(n: int) -> int:\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "for (int i = 0; i < 10; i++)\n{\n\tConsole.WriteLine($\"i = {i}\");\n}\n",
    "public sealed class Tokenizer : IDisposable\n{\n    private readonly Dictionary<string, int> _vocab = new();\n    public void Dispose() { }\n}",
    "const add = (a, b) => a + b;\nconsole.log(add(2, 3)); // 5\n",
    "{\"name\": \"test\", \"values\": [1, 2.5, -3e10, true, null], \"nested\": {\"key\": \"value\"}}",
    "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do\n  wc -l \"$f\"\ndone\n",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE 'A%' ORDER BY id DESC;",
    "<html>\n  <body>\n    <p class=\"x\">Hello &amp; welcome</p>\n  </body>\n</html>",
    "x = [i**2 for i in range(10) if i % 2 == 0]\nprint(f\"{x!r:>20}\")",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * 2).collect();\n    println!(\"{:?}\", v);\n}\n",
    "if (a != b && c <= d || !e) { return a ?? b; } else { throw new Exception(\"oops\"); }",
    "    \t    mixed indentation\n\t\t\ttabs only\n            spaces only\n",
    "import numpy as np\n\narr = np.zeros((3, 4), dtype=np.float32)\narr[1:, ::2] += 1.5\n",
    "// comment\n/* block\n   comment */\n#include <stdio.h>\nint main(void) { return 0; }\n",
    "git commit -m \"Fix: handle edge-cases (#123)\" && git push origin main --force-with-lease",
    "regex = r'^(?P<user>[\\w.+-]+)@(?P<host>[\\w-]+\\.[\\w.-]+)$'",
    "matrix = [[1, 2, 3],\n          [4, 5, 6],\n          [7, 8, 9]]",
    "key1=value1\nkey2 = value with spaces  \n# comment line\n[section]\nflag=true",
    "0x1F 0xDEADBEEF 0b1010 0o777 1_000_000 3.14e-10 6.02E+23 .5 5. -0.0",
    "    return self._cache.get(key, default)  # type: ignore[attr-defined]",
]

NUMBERS_FIXED = [
    "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678", "123456789", "1234567890",
    "12345678901234567890", "3.14159265358979", "2,147,483,647", "1.000.000,00", "-42", "+7",
    "100%", "50/50", "1/2", "2024-01-15", "15/01/2024", "23:59:59.999", "v1.2.3", "192.168.0.1",
    "1e10", "1E-5", "0.000001", "999999999999", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "〇一二三四五六七八九十",
    "１２３４５", "𝟎𝟏𝟐𝟑", "①②③④⑤", "Ⅻ", "²³", "¼½¾",
]

MULTILINGUAL = [
    "你好，世界！今天天气很好。", "我爱自然语言处理和机器学习。", "中华人民共和国成立于一九四九年。",
    "日本語のテキストです。ひらがなとカタカナと漢字。", "東京タワーは333メートルです。", "ｶﾀｶﾅ半角とカタカナ全角",
    "안녕하세요, 세계! 한국어 문장입니다.", "대한민국의 수도는 서울입니다.",
    "مرحبا بالعالم! هذه جملة عربية.", "اللُّغَةُ العَرَبِيَّةُ جَمِيلَةٌ", "السلام عليكم ورحمة الله وبركاته ١٢٣",
    "שלום עולם! זה משפט בעברית.", "नमस्ते दुनिया! यह हिंदी का वाक्य है।", "भारत एक विशाल देश है। क्षत्रिय, ज्ञान, श्री",
    "สวัสดีชาวโลก นี่คือประโยคภาษาไทย", "Привет, мир! Это предложение на русском языке.", "Ёлки-палки, ЁЖИК и ёжик.",
    "Γειά σου Κόσμε! Αυτή είναι μια ελληνική πρόταση.", "Xin chào thế giới! Đây là câu tiếng Việt.",
    "Merhaba dünya! Bu bir Türkçe cümledir. İĞÜŞÖÇ ığüşöç", "Zdravo svete! Ово је ћирилица.",
    "Բարեւ աշխարհ", "გამარჯობა მსოფლიო", "ሰላም ልዑል", "ᐊᐃᓐᓇᐅᔭᖅ", "ꦲꦏ꧀ꦱꦫꦗꦮ", "𐌰𐌱𐌲 Gothic 𐐷 Deseret",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝒮𝒸𝓇𝒾𝓅𝓉", "Mixed 中文 English 日本語 한국어 العربية עברית हिन्दी",
]

EMOJI = [
    "😀", "😀😃😄😁", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸🇯🇵🇩🇪", "1️⃣ 2️⃣ #️⃣", "❤️", "♥", "☺️",
    "I love pizza 🍕 and sushi 🍣!", "🔥🔥🔥 hot 🔥", "🧑🏿‍🚀 in 🚀 to 🌕", "emoji at end 🎉", "🎉 emoji at start",
    "Weather: ☀️ 🌤 ⛅ 🌧 ⛈ 🌩 ❄️", "✅ done ❌ failed ⚠️ warning", "🫠🫡🫥 new ones", "👋🏻👋🏼👋🏽👋🏾👋🏿",
]

COMBINING = [
    "e\u0301", "cafe\u0301", "n\u0303", "a\u0308o\u0308u\u0308", "Z\u0351\u0308\u0313a\u0362\u036al\u0314\u0312g\u0355o\u0359",
    "\u0301 leading combining mark", "A\u030a vs \u00c5 vs \u212b", "\u1100\u1161\u11a8 jamo", "\uac01 syllable",
    "q\u0307\u0323 ordering", "s\u0323\u0307 and s\u0307\u0323", "\u0928\u093f + \u0915\u094d\u0937", "x\u20dd enclosed", "a\u0488b",
    "fi\ufb01 fl\ufb02", "\u2126 ohm vs \u03a9 omega", "\u00bd\u2153", "\u1e9b\u0323", "\u0390 \u03b0", "\u0130\u0131",
]

SPECIAL = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>",
    "<|python_tag|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_0|>", "<|reserved_special_token_250|>",
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|box_end|>", "<|vision_pad|>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
    "<tool_call>", "</tool_call>", "<think>", "</think>", "<tool_response>", "</tool_response>",
    "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
    "<image_soft_token>", "<unused0>", "<unused99>", "<unused6241>", "[multimodal]", "<s>", "</s>", "<|user|>",
    "<|assistant|>", "<|system|>", "<|end|>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>",
]

NEAR_MISSES = [
    "<|begin_of_text|", "|begin_of_text|>", "<|begin_of_text |>", "< |begin_of_text|>", "<|BEGIN_OF_TEXT|>",
    "<|begin_of_text|><|begin_of_text|>", "<|im_start|user", "<im_start>", "<|im_start|>>", "<<|im_start|>",
    "<think", "think>", "<THINK>", "<thinking>", "</think>>", "<think></think>", "< s>", "<s >", "<<s>>", "</ s>",
    "<s><s></s></s>", "<bos><bos>", "<bo s>", "<unused>", "<unused-1>", "<unused06241>", "<pad", "pad>",
    "<start_of_turn >", "<end_of_turn", "<|endoftext", "endoftext|>", "<|endoftext|>endoftext", "<<unk>>", "<unk",
    "<0x41>", "<0x0A>", "<0xZZ>", "<0x+A>", "<0x41", "▁", "▁▁", "▁hello", "hello▁world", "Ġ", "Ġhello", "Ċ", "ĉ",
]

WHITESPACE_PIECES = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2003", "\u000b", "\u000c", "\u0085", "\u2028"]

WORDS = ("the of and to in is was for on that with as by at from his it an were are which this be or has had not but "
         "what all when we there can been one who their more if will would about out up them then she many some so these "
         "time year people way day man thing woman life child world school state family student group country problem "
         "hand part place case week company system program question work government number night point home water room "
         "mother area money story fact month lot right study book eye job word business issue side kind head house").split()


def handwritten():
    texts = []
    escapes = {"t": "\t", "n": "\n", "r": "\r"}
    for line in ENGLISH.strip("\n").splitlines():
        line = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), line)
        texts.append(re.sub(r"\\([tnr])", lambda m: escapes[m.group(1)], line))
    texts += CODE + NUMBERS_FIXED + MULTILINGUAL + EMOJI + COMBINING
    for token in SPECIAL:
        texts += [token, f"Hello {token} world", f"{token}Hello", f"Hello{token}", f" {token} ", f"{token}{token}", f"\n{token}\n",
                  f"a{token}b{token}c", f"{token} {token}", token.upper(), token.lower()]
    texts += NEAR_MISSES
    for miss in NEAR_MISSES:
        texts.append(f"text {miss} text")
    # Chat-shaped prompts as templates render them.
    texts += [
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>",
        "<bos><start_of_turn>user\nWrite a poem.<end_of_turn>\n<start_of_turn>model\nRoses are red.<end_of_turn>\n",
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHello [/INST] Hi there </s><s>[INST] Again [/INST]",
        "<|endoftext|>The end.<|endoftext|><|endoftext|>",
    ]
    return texts


def whitespace_runs(rng):
    texts = []
    for n in list(range(1, 41)) + [47, 64, 80, 100, 128]:
        texts += [" " * n, "a" + " " * n + "b", " " * n + "word", "word" + " " * n, "\t" * min(n, 20) + "x"]
    for _ in range(120):
        run = "".join(rng.choice(WHITESPACE_PIECES) for _ in range(rng.randint(1, 12)))
        word = rng.choice(WORDS)
        texts.append(rng.choice([run, run + word, word + run, word + run + word, run + word + run]))
    texts += ["", "\n", "\n\n\n", "\r\n\r\n", " \n \n ", "\t\n\t\n", "   leading", "trailing   ", "  both  ", "\n\nx\n\n"]
    return texts


def numbers(rng):
    texts = []
    for digits in range(1, 26):
        for _ in range(3):
            texts.append("".join(rng.choice("0123456789") for _ in range(digits)))
    for _ in range(150):
        kind = rng.randrange(8)
        if kind == 0:
            texts.append(f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 8)}f}")
        elif kind == 1:
            texts.append(f"{rng.randint(0, 10**12):,}")
        elif kind == 2:
            texts.append(f"{rng.randint(1900, 2100)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z")
        elif kind == 3:
            texts.append(f"{rng.random():.3e}")
        elif kind == 4:
            texts.append(f"item {rng.randint(1, 999)} costs ${rng.randint(1, 99999) / 100:.2f} (x{rng.randint(1, 50)})")
        elif kind == 5:
            texts.append(" ".join(str(rng.randint(0, 10**rng.randint(1, 9))) for _ in range(rng.randint(2, 8))))
        elif kind == 6:
            texts.append(f"0x{rng.getrandbits(rng.choice([8, 16, 32, 64])):X}")
        else:
            texts.append("".join(rng.choice("0123456789.,-+ ") for _ in range(rng.randint(3, 30))))
    return texts


def random_mixes(rng, count):
    pools = [
        "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " \t\n\r", ".,;:!?'\"()[]{}<>-_/\\|@#$%^&*+=~`",
        "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßœŒ", "你好世界中文字符测试汉语言", "ひらがなカタカナ漢字", "한국어문장", "العربيةمرحبا", "עברית",
        "हिन्दीनमस्ते", "ภาษาไทย", "Русскийязык", "Ελληνικά", "😀😃🎉🍕🔥👍🏽👩‍💻🇺🇸", "\u0301\u0308\u0323\u0303", "\u00a0\u3000\u2009\u200b\u200d\ufeff",
        "ﬁﬂﬀＡＢＣ１２３ſK", "▁Ġ", "<>|_", "\u0000\u0001\u001f\u007f",
    ]
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.35:
                parts.append(rng.choice(WORDS) + rng.choice(["", " ", " ", ", ", ". ", "\n"]))
            elif r < 0.45:
                parts.append(rng.choice(SPECIAL + NEAR_MISSES))
            else:
                pool = rng.choice(pools)
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 10))))
        text = "".join(parts)
        if rng.random() < 0.1:
            text = unicodedata.normalize(rng.choice(["NFC", "NFD", "NFKC", "NFKD"]), text)
        if rng.random() < 0.1:
            text = text.upper() if rng.random() < 0.5 else text.lower()
        texts.append(text)
    return texts


def sentences(rng, count):
    texts = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 25))]
        if rng.random() < 0.5:
            words[0] = words[0].capitalize()
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(["it's", "don't", "we'll", "they're", "I'd", "you've", "I'm"]))
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 100000)))
        texts.append(" ".join(words) + rng.choice([".", "!", "?", "", "...", ";", "\n"]))
    return texts


def main():
    rng = random.Random(20261207)
    texts = handwritten() + whitespace_runs(rng) + numbers(rng) + sentences(rng, 400) + random_mixes(rng, 900)
    seen, unique = set(), []
    for text in texts:
        if text not in seen:
            seen.add(text)
            unique.append(text)
    with open(sys.argv[1], "w", encoding="utf-8", newline="\n") as f:
        for text in unique:
            f.write(json.dumps(text, ensure_ascii=False) + "\n")
    print(f"{len(unique)} texts written to {sys.argv[1]}")


if __name__ == "__main__":
    main()
