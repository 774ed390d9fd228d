using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Tokenization;

/// <summary>
/// The exact bytes every token id stands for, so that concatenating the bytes of an encoding's ids
/// gives its UTF-8 text: what a byte-level constraint needs to know which tokens may follow.
/// Special and added tokens (<c>&lt;|endoftext|&gt;</c>, control pieces) are marked special and
/// have no bytes; so have ids the tokenizer does not know (a model's vocabulary may be wider).
/// </summary>
/// <remarks>
/// Sources: byte-level <see cref="BpeTokenizer"/> (vocabulary strings through GPT-2's
/// byte-to-character table), <see cref="TiktokenTokenizer"/> (its encoder's byte sequences), and
/// <see cref="SentencePieceTokenizer"/>/<see cref="LlamaTokenizer"/> (U+2581 as a space,
/// <c>&lt;0xNN&gt;</c> byte-fallback pieces as that byte). Immutable and thread-safe.
/// </remarks>
internal sealed class TokenByteTable
{
    private static readonly ConditionalWeakTable<Tokenizer, ConcurrentDictionary<int, TokenByteTable>> Cache = new();

    private readonly byte[] _bytes;
    private readonly int[] _offsets;
    private readonly bool[] _special;

    private TokenByteTable(int count, Func<int, byte[]?> bytesOf, Func<int, bool> isSpecial, string source, bool dropsLeadingSpace)
    {
        Count = count;
        Source = source;
        DropsLeadingSpace = dropsLeadingSpace;
        _offsets = new int[count + 1];
        _special = new bool[count];
        var blob = new List<byte>(count * 8);
        for (int id = 0; id < count; id++)
        {
            _offsets[id] = blob.Count;
            if (isSpecial(id)) _special[id] = true;
            else if (bytesOf(id) is { } bytes) blob.AddRange(bytes);
        }
        _offsets[count] = blob.Count;
        _bytes = blob.ToArray();
        var single = new bool[256];
        for (int id = 0; id < count; id++)
            if (Length(id) == 1) single[_bytes[_offsets[id]]] = true;
        HasEverySingleByte = Array.TrueForAll(single, s => s);
    }

    /// <summary>Ids covered: the model's vocabulary size (ids at or above it do not exist).</summary>
    public int Count { get; }

    /// <summary>Where the bytes came from (the tokenizer kind), for messages.</summary>
    public string Source { get; }

    /// <summary>
    /// Every byte 0-255 is a token of its own, so any byte string can be written token by token:
    /// the property that lets a token budget force a constraint to completion.
    /// </summary>
    public bool HasEverySingleByte { get; }

    /// <summary>
    /// The decoder drops one leading space from the text (SentencePiece's dummy prefix): the first
    /// token of a generation, when its bytes start with a space, reads as its bytes without it.
    /// </summary>
    public bool DropsLeadingSpace { get; }

    /// <summary>The token's bytes; empty for special tokens and ids without bytes.</summary>
    public ReadOnlySpan<byte> Bytes(int id) => (uint)id < (uint)Count ? _bytes.AsSpan(_offsets[id], _offsets[id + 1] - _offsets[id]) : default;

    public int Length(int id) => (uint)id < (uint)Count ? _offsets[id + 1] - _offsets[id] : 0;

    public bool IsSpecial(int id) => (uint)id < (uint)Count && _special[id];

    /// <summary>A token a constraint may allow: not special, and at least one byte long.</summary>
    public bool IsText(int id) => Length(id) > 0;

    /// <summary>The table of <paramref name="tokenizer"/> for a model with <paramref name="vocabularySize"/> logits (cached per tokenizer).</summary>
    /// <exception cref="NotSupportedException">The tokenizer kind has no known byte mapping (the message names it).</exception>
    public static TokenByteTable For(Tokenizer tokenizer, int vocabularySize)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (vocabularySize < 1) throw new ArgumentOutOfRangeException(nameof(vocabularySize), vocabularySize, "The vocabulary size must be 1 or more.");
        return Cache.GetOrCreateValue(tokenizer).GetOrAdd(vocabularySize, size => Create(tokenizer, size));
    }

    private static TokenByteTable Create(Tokenizer tokenizer, int count) => tokenizer switch
    {
        TiktokenTokenizer tiktoken => FromTiktoken(tiktoken, count),
        HuggingFaceTokenizer huggingFace => FromHuggingFace(huggingFace, count),
        BpeTokenizer { ByteLevel: true } bpe => FromByteLevelBpe(bpe, count),
        SentencePieceTokenizer sentencePiece => FromSentencePiece(sentencePiece, count),
        BpeTokenizer => throw new NotSupportedException(
            "Output constraints need token bytes; a BpeTokenizer without ByteLevel has none (its strings are not byte-level). Use a byte-level BPE, tiktoken or SentencePiece tokenizer."),
        _ => throw new NotSupportedException(
            $"Output constraints need token bytes, which are known for byte-level BPE, tiktoken and SentencePiece tokenizers; {tokenizer.GetType().Name} is not one of them."),
    };

    private static TokenByteTable FromTiktoken(TiktokenTokenizer tokenizer, int count)
    {
        var special = new HashSet<int>(tokenizer.SpecialTokens?.Values ?? []);
        // Microsoft.ML.Tokenizers 3.0.0 keeps the id -> bytes map internal; where it is absent, each
        // id is decoded alone and kept only when that is lossless (fragments of a character are lost).
        var decoder = typeof(TiktokenTokenizer).GetProperty("Decoder", BindingFlags.Instance | BindingFlags.NonPublic)?.GetValue(tokenizer)
            as IReadOnlyDictionary<int, ReadOnlyMemory<byte>>;
        if (decoder is not null)
            return new TokenByteTable(count, id => decoder.TryGetValue(id, out var bytes) ? bytes.ToArray() : null, special.Contains,
                "tiktoken", dropsLeadingSpace: false);
        return new TokenByteTable(count, id => LosslessDecode(tokenizer, id), special.Contains, "tiktoken (decoded)", dropsLeadingSpace: false);
    }

    private static byte[]? LosslessDecode(Tokenizer tokenizer, int id)
    {
        string text;
        try
        {
            text = tokenizer.Decode([id]);
        }
        catch (Exception e) when (e is ArgumentException or KeyNotFoundException or InvalidOperationException)
        {
            return null;
        }
        return text.Length == 0 || text.Contains('\uFFFD') ? null : Encoding.UTF8.GetBytes(text);
    }

    private static TokenByteTable FromByteLevelBpe(BpeTokenizer tokenizer, int count)
    {
        var special = new HashSet<int>(tokenizer.SpecialTokens?.Values ?? []);
        var byteOf = CharToByte();
        var strings = new Dictionary<int, string>();
        foreach (var (token, id) in tokenizer.Vocabulary) strings.TryAdd(id, token);
        return new TokenByteTable(count, id =>
        {
            if (!strings.TryGetValue(id, out var token)) return null;
            var bytes = new byte[token.Length];
            for (int i = 0; i < token.Length; i++)
            {
                if (!byteOf.TryGetValue(token[i], out byte b)) return null;     // not a byte-level string: no bytes
                bytes[i] = b;
            }
            return bytes;
        }, special.Contains, "byte-level BPE", dropsLeadingSpace: false);
    }

    /// <summary>
    /// A tokenizer.json tokenizer: a ByteLevel decoder reads each token's characters as bytes (a token
    /// that is not all byte-level characters, such as an added token, as its UTF-8); a SentencePiece-style
    /// decoder (Replace, ByteFallback, Fuse, Strip, Metaspace) gives <c>&lt;0xXX&gt;</c> pieces their byte and
    /// other tokens the UTF-8 of their replaced text.
    /// </summary>
    private static TokenByteTable FromHuggingFace(HuggingFaceTokenizer tokenizer, int count)
    {
        var steps = tokenizer.Decoder ?? throw new NotSupportedException(
            "Output constraints need token bytes; this tokenizer.json has no decoder, so its tokens are joined with spaces and have no bytes of their own.");
        bool byteLevel = steps.OfType<DecoderStep.ByteLevel>().Any();
        bool byteFallback = steps.OfType<DecoderStep.ByteFallback>().Any();
        if (!byteLevel && steps.Any(step => step is not (DecoderStep.Replace or DecoderStep.ByteFallback or DecoderStep.Fuse or DecoderStep.Strip or DecoderStep.Metaspace)))
            throw new NotSupportedException($"Output constraints need token bytes, which are known for tokenizer.json decoders of the byte-level and SentencePiece kinds; " +
                $"this one has {string.Join(", ", steps.Select(step => step.GetType().Name))}.");
        bool dropsLeadingSpace = steps.Any(step => step is DecoderStep.Strip { Content: ' ', Start: > 0 } or DecoderStep.Metaspace { DropsLeading: true });
        return new TokenByteTable(count, id =>
        {
            if (tokenizer.IdToToken(id) is not { } token) return null;
            if (byteLevel)
            {
                var bytes = new byte[token.Length];
                for (int i = 0; i < token.Length; i++)
                    if (!ByteLevelAlphabet.TryGetByte(token[i], out bytes[i])) return Encoding.UTF8.GetBytes(token);
                return bytes;
            }
            if (byteFallback && DecoderStep.ByteFallback.TryParseByte(token, out byte value)) return [value];
            var text = new List<string> { token };
            foreach (var step in steps)
                if (step is DecoderStep.Replace or DecoderStep.Metaspace { DropsLeading: false }) text = step.Apply(text);
                else if (step is DecoderStep.Metaspace metaspace) text = [text[0].Replace(metaspace.Replacement, ' ')];
            return Encoding.UTF8.GetBytes(text[0]);
        }, tokenizer.IsSpecial, $"tokenizer.json ({tokenizer.Kind})", dropsLeadingSpace);
    }

    private static TokenByteTable FromSentencePiece(SentencePieceTokenizer tokenizer, int count)
    {
        if (tokenizer.TreatWhitespaceAsSuffix)
            throw new NotSupportedException("Output constraints do not support a SentencePiece model that treats whitespace as a suffix.");
        var special = new HashSet<int>(tokenizer.SpecialTokens?.Values ?? []) { tokenizer.BeginningOfSentenceId, tokenizer.EndOfSentenceId, tokenizer.UnknownId };
        var pieces = new Dictionary<int, string>();
        foreach (var (piece, id) in tokenizer.Vocabulary) pieces.TryAdd(id, piece);
        bool escapes = tokenizer.EscapeWhiteSpaces;
        return new TokenByteTable(count, id =>
        {
            if (!pieces.TryGetValue(id, out var piece)) return null;
            if (tokenizer.ByteFallback && piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
                && byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out byte value))
                return [value];
            // Control and user-defined pieces outside SpecialTokens decode to nothing: they are not text.
            if (piece.Any(c => c != '\u2581') && LosslessDecode(tokenizer, id) is null) return null;
            return Encoding.UTF8.GetBytes(escapes ? piece.Replace('\u2581', ' ') : piece);
        }, special.Contains, "SentencePiece", dropsLeadingSpace: tokenizer.AddDummyPrefix && escapes);
    }

    /// <summary>GPT-2's reversible byte-to-printable-character table, inverted.</summary>
    private static Dictionary<char, byte> CharToByte()
    {
        var map = new Dictionary<char, byte>(256);
        int shifted = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[printable ? (char)b : (char)(256 + shifted++)] = (byte)b;
        }
        return map;
    }
}
