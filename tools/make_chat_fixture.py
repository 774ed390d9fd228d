#!/usr/bin/env python3
"""Builds the tiny-chatml test fixture: a random-weight GPT-2 with a byte-level BPE tokenizer of the
kit's own, the added special tokens <|im_start|> and <|im_end|>, and a ChatML chat template written
for this project (Hermes-style tool calls), so that chat prompts can be tested end to end.

    /usr/bin/python3 tools/make_chat_fixture.py tests/Fixtures

Writes tests/Fixtures/tiny-chatml/:
  tokenizer.json          byte-level BPE: 256 byte pieces, MERGES merges learned from CORPUS below,
                          added tokens <|endoftext|>, <|im_start|>, <|im_end|> (special, not in model.vocab)
  tokenizer_config.json   chat_template (CHAT_TEMPLATE), eos_token <|im_end|> as an AddedToken object,
                          pad_token <|endoftext|>, no bos_token, add_bos_token false
  config.json, generation_config.json (eos_token_id = <|im_end|>), model.onnx
  golden-chat.json        conversations rendered by Python Jinja2 in transformers' chat-template environment
                          (tools/jinja_reference.py), and the ids a Hugging Face tokenizer gives the rendered text
                          with add_special_tokens=False: special tokens matched whole, every other span byte-level
                          BPE'd (REFERENCE_ENCODE below, independent of the .NET code; its pre-tokenizer is GPT-2's
                          pattern restricted to ASCII, so the golden texts are ASCII)
Deterministic: a rerun writes identical tokenizer and golden files (the ONNX file too, given the same torch).
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gptkit  # noqa: E402
import jinja_reference  # noqa: E402
import torch  # noqa: E402

NAME = "tiny-chatml"
MERGES = 160
SEED = 7
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Text the merges are learned from: the words chat prompts and tool calls of the tests use most.
CORPUS = """You are a helpful assistant. You are a careful assistant who answers briefly.
What is the capital of France? The capital of France is Paris.
What is the weather in Paris? What is the temperature in Paris right now?
Tell me a short story about a dog. Tell me a joke. Answer with yes or no.
The user asks a question and the assistant answers the question.
<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>
<tool_response>{"temperature": 22, "unit": "celsius"}</tool_response>
{"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city.",
"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
Tools you may call, one JSON object per line. To call a tool, answer with a tool call.
system user assistant tool the and of to in is it that for with on as be at by this
"""

# Our own ChatML template: system first (or the tools preamble), one block per message, Hermes-style
# <tool_call>{...}</tool_call> for the assistant's calls, tool results as role "tool" in <tool_response>.
CHAT_TEMPLATE = """{%- set first_is_system = messages and messages[0].role == 'system' %}
{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if first_is_system %}
        {{- messages[0].content + '\\n\\n' }}
    {%- endif %}
    {{- 'Tools you may call, one JSON object per line:\\n' }}
    {%- for tool in tools %}
        {{- tool | tojson + '\\n' }}
    {%- endfor %}
    {{- 'To call a tool, answer with <tool_call>{"name": NAME, "arguments": {...}}</tool_call>.<|im_end|>\\n' }}
{%- elif first_is_system %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'system' %}
        {%- if not loop.first %}
            {{- raise_exception('Only the first message may be a system message.') }}
        {%- endif %}
    {%- elif message.role == 'tool' %}
        {{- '<|im_start|>tool\\n<tool_response>' + message.content + '</tool_response><|im_end|>\\n' }}
    {%- elif message.role == 'assistant' and message.tool_calls %}
        {{- '<|im_start|>assistant\\n' + (message.content or '') }}
        {%- for call in message.tool_calls %}
            {{- '<tool_call>' + {'name': call.function.name, 'arguments': call.function.arguments} | tojson + '</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city."}}, "required": ["city"]}}}

CONVERSATIONS = [
    {"name": "single-user", "messages": [{"role": "user", "content": "What is the capital of France?"}], "add_generation_prompt": True},
    {"name": "system-multi-turn", "add_generation_prompt": True, "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "The dog told the joke."},
        {"role": "user", "content": "Tell me a short story about a dog."}]},
    {"name": "no-generation-prompt", "add_generation_prompt": False, "messages": [
        {"role": "user", "content": "Answer with yes or no."}, {"role": "assistant", "content": "yes"}]},
    {"name": "tool-call", "add_generation_prompt": True, "tools": [WEATHER_TOOL], "messages": [
        {"role": "system", "content": "You are a careful assistant who answers briefly."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temperature\": 22, \"unit\": \"celsius\"}"}]},
]


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character table (printable Latin-1 bytes map to themselves)."""
    kept = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in kept:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHARS = bytes_to_unicode()
# GPT-2's pre-tokenization pattern with \p{L} and \p{N} narrowed to ASCII letters and digits (the golden texts are ASCII).
PRETOKENIZE = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")


def pieces(text):
    return ["".join(BYTE_CHARS[b] for b in word.encode("utf-8")) for word in PRETOKENIZE.findall(text)]


def learn_merges(text, count):
    words = {}
    for piece in pieces(text):
        words[tuple(piece)] = words.get(tuple(piece), 0) + 1
    merges = []
    for _ in range(count):
        pairs = {}
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] = pairs.get(pair, 0) + n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))      # most frequent, then lexicographic: deterministic
        merges.append(best)
        merged = {}
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    return merges


def bpe(piece, ranks):
    parts = list(piece)
    while len(parts) > 1:
        candidates = [(ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
        rank, i = min(candidates)
        if rank == 1 << 30:
            break
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return parts


def reference_encode(text, vocab, ranks, special_ids):
    """What a Hugging Face tokenizer.json of this kind gives with add_special_tokens=False: added tokens
    split out whole first, each other span pre-tokenized and BPE'd on its own."""
    ids = []
    split = re.split("(" + "|".join(re.escape(s) for s in SPECIAL) + ")", text)
    for span in split:
        if span in special_ids:
            ids.append(special_ids[span])
        elif span:
            for piece in pieces(span):
                ids.extend(vocab[p] for p in bpe(piece, ranks))
    return ids


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = os.path.join(sys.argv[1], NAME)
    os.makedirs(folder, exist_ok=True)
    torch.set_num_threads(1)

    merges = learn_merges(CORPUS, MERGES)
    vocab = {BYTE_CHARS[b]: b for b in range(256)}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    special_ids = {token: len(vocab) + i for i, token in enumerate(SPECIAL)}
    vocab_size = len(vocab) + len(SPECIAL)
    end_of_text, im_start, im_end = (special_ids[t] for t in SPECIAL)
    ranks = {pair: i for i, pair in enumerate(merges)}

    added = [{"id": special_ids[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in SPECIAL]
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }

    def added_token(content):
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
    tokenizer_config = {
        "add_bos_token": False, "add_prefix_space": False,
        "added_tokens_decoder": {str(special_ids[t]): added_token(t) for t in SPECIAL},
        "bos_token": None, "eos_token": dict(added_token("<|im_end|>"), __type="AddedToken"), "pad_token": "<|endoftext|>",
        "unk_token": None, "chat_template": CHAT_TEMPLATE, "clean_up_tokenization_spaces": False,
        "model_max_length": 512, "tokenizer_class": "GPT2Tokenizer",
    }

    config = gptkit.GPTConfig(2, 2, 32, 512, None, bos_token_id=end_of_text, eos_token_id=im_end, vocab_size=vocab_size)
    model = gptkit.GPT(config)
    model.init_weights(std=0.3, seed=SEED, vector_std=0.1)
    model.eval()
    gptkit.export_onnx(model, os.path.join(folder, "model.onnx"))
    model_config = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "_name_or_path": NAME,
        "n_layer": config.n_layer, "n_head": config.n_head, "n_embd": config.n_embd,
        "n_positions": config.n_positions, "n_ctx": config.n_positions, "vocab_size": vocab_size,
        "bos_token_id": end_of_text, "eos_token_id": im_end, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
        "tie_word_embeddings": True, "use_cache": True, "torch_dtype": "float32",
    }
    generation_config = {"bos_token_id": end_of_text, "eos_token_id": im_end, "pad_token_id": end_of_text, "max_new_tokens": 24}

    env = jinja_reference.environment()
    template = env.from_string(CHAT_TEMPLATE)
    golden = {"special_token_ids": special_ids, "conversations": []}
    for conversation in CONVERSATIONS:
        # transformers' render call: messages, tools, documents, add_generation_prompt, then the special tokens it has
        text = template.render(messages=conversation["messages"], tools=conversation.get("tools"), documents=None,
                               add_generation_prompt=conversation["add_generation_prompt"],
                               eos_token="<|im_end|>", pad_token="<|endoftext|>")
        golden["conversations"].append(dict(conversation, rendered=text, ids=reference_encode(text, vocab, ranks, special_ids)))

    files = {"tokenizer.json": tokenizer, "tokenizer_config.json": tokenizer_config, "config.json": model_config,
             "generation_config.json": generation_config, "golden-chat.json": golden}
    for file, content in files.items():
        with open(os.path.join(folder, file), "w", encoding="utf-8", newline="\n") as f:
            json.dump(content, f, ensure_ascii=False, indent=None if file == "tokenizer.json" else 2)
            f.write("\n")
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
        f.write(f"# {NAME}\n\nA random-weight test fixture made by tools/make_chat_fixture.py: GPT-2 architecture, "
                f"{config.n_layer} layers, {config.n_head} heads, width {config.n_embd}, {config.n_positions} positions, "
                f"a byte-level BPE vocabulary of {vocab_size} ids ({len(merges)} merges, added tokens "
                f"{', '.join(f'{t} = {special_ids[t]}' for t in SPECIAL)}), a ChatML chat template written for this "
                f"project with Hermes-style tool calls, eos_token <|im_end|>, seed {SEED}. It produces no meaningful "
                "text; golden-chat.json holds Python Jinja2's renderings of four conversations and the ids a Hugging "
                "Face tokenizer gives them.\n")
    size = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    print(f"make_chat_fixture: {folder}: {size / 1e6:.2f} MB, vocabulary {vocab_size}, merges {len(merges)}")


if __name__ == "__main__":
    main()
