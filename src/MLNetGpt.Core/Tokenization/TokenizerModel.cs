namespace MLNetGpt.Tokenization;

/// <summary>The <c>model</c> of a tokenizer.json: turns one pre-tokenized piece into token ids.</summary>
internal abstract class TokenizerModel
{
    /// <summary>Appends the ids of <paramref name="piece"/>.</summary>
    public abstract void Encode(string piece, List<int> ids);

    /// <summary>Appends the ids of <paramref name="piece"/> with the character range [Start, End) of the piece each covers.</summary>
    public abstract void Encode(string piece, List<(int Id, int Start, int End)> tokens);

    /// <summary>The token string of <paramref name="id"/>, or null when the vocabulary has no such id.</summary>
    public abstract string? IdToToken(int id);

    /// <summary>The id of a token string in the vocabulary, or null.</summary>
    public abstract int? TokenToId(string token);

    /// <summary>Entries in the vocabulary (tokenizers' get_vocab_size: where ids for new added tokens start).</summary>
    public abstract int VocabularyCount { get; }

    /// <summary>One more than the largest id of the vocabulary.</summary>
    public abstract int IdLimit { get; }
}

/// <summary>
/// A bounded, lock-free memo of piece encodings: a direct-mapped table whose slots hold immutable
/// entries, so readers on any thread see either a whole entry or none (a collision just replaces it).
/// </summary>
internal sealed class EncodingCache<T> where T : class
{
    private const int MaxKeyLength = 256;
    private readonly Entry?[] _slots;
    private readonly int _mask;

    private sealed record Entry(string Key, T Value);

    public EncodingCache(int capacityPowerOfTwo = 1 << 16)
    {
        _slots = new Entry?[capacityPowerOfTwo];
        _mask = capacityPowerOfTwo - 1;
    }

    public bool TryGet(ReadOnlySpan<char> key, out T value)
    {
        var entry = Volatile.Read(ref _slots[Slot(key)]);
        if (entry is not null && key.SequenceEqual(entry.Key))
        {
            value = entry.Value;
            return true;
        }
        value = null!;
        return false;
    }

    public void Set(string key, T value)
    {
        if (key.Length >= MaxKeyLength) return;
        Volatile.Write(ref _slots[Slot(key)], new Entry(key, value));
    }

    private int Slot(ReadOnlySpan<char> key) => string.GetHashCode(key) & _mask;
}
