using System.Text;

namespace MLNetGpt.Tokenization;

/// <summary>
/// The Unigram model of a tokenizer.json, as Hugging Face tokenizers runs it (SentencePiece's
/// optimized Viterbi): every vocabulary piece that starts at a character boundary is a candidate
/// with its score; a character no single-character piece covers gets the unknown piece at the
/// lowest score minus 10; the best-scoring path wins, the earliest candidate on a tie; consecutive
/// unknown pieces are fused into one. A fused unknown span then becomes its byte pieces
/// (<c>&lt;0xXX&gt;</c>) when <c>byte_fallback</c> is on and all exist, otherwise the unknown id.
/// </summary>
internal sealed class UnigramModel : TokenizerModel
{
    private const double UnknownPenalty = 10.0;
    private readonly (string Piece, double Score)[] _vocabulary;
    private readonly Dictionary<string, int> _ids;
    private readonly int? _unknownId;
    private readonly bool _byteFallback;
    private readonly double _unknownScore;
    private readonly Node _root = new();
    private readonly EncodingCache<(int Id, int Start, int End)[]> _cache = new();

    private sealed class Node
    {
        public Dictionary<char, Node>? Children;
        public int Id = -1;
    }

    public UnigramModel((string Piece, double Score)[] vocabulary, Dictionary<string, int> ids, int? unknownId, bool byteFallback)
    {
        _vocabulary = vocabulary;
        _ids = ids;
        _unknownId = unknownId;
        _byteFallback = byteFallback;
        double min = double.PositiveInfinity;
        foreach (var (_, score) in vocabulary) min = Math.Min(min, score);
        _unknownScore = min - UnknownPenalty;
        foreach (var (piece, id) in ids)
        {
            var node = _root;
            foreach (char c in piece)
            {
                node.Children ??= [];
                if (!node.Children.TryGetValue(c, out var child)) node.Children[c] = child = new Node();
                node = child;
            }
            node.Id = id;
        }
    }

    public override int VocabularyCount => _vocabulary.Length;

    public override int IdLimit => _vocabulary.Length;

    public override string? IdToToken(int id) => (uint)id < (uint)_vocabulary.Length ? _vocabulary[id].Piece : null;

    public override int? TokenToId(string token) => _ids.TryGetValue(token, out int id) ? id : null;

    public override void Encode(string piece, List<int> ids)
    {
        foreach (var (id, _, _) in Tokens(piece)) ids.Add(id);
    }

    public override void Encode(string piece, List<(int Id, int Start, int End)> tokens) => tokens.AddRange(Tokens(piece));

    private (int Id, int Start, int End)[] Tokens(string sentence)
    {
        if (sentence.Length == 0) return [];
        if (_cache.TryGet(sentence, out var cached)) return cached;
        var result = new List<(int, int, int)>();
        foreach (var (start, end) in BestPath(sentence))
        {
            // tokenizers looks every piece up first: a fused unknown span spelled like a piece (the unknown piece itself) keeps that id.
            if (_ids.TryGetValue(sentence[start..end], out int id))
            {
                result.Add((id, start, end));
                continue;
            }
            if (_byteFallback && TryBytes(sentence[start..end], start, end, result)) continue;
            result.Add((_unknownId ?? throw new InvalidOperationException(
                $"The Unigram tokenizer has no unk_id, and the text holds {Quote(sentence[start..end])}, which no piece covers."), start, end));
        }
        var tokens = result.ToArray();
        _cache.Set(sentence, tokens);
        return tokens;
    }

    private static string Quote(string text) => System.Text.Json.JsonSerializer.Serialize(text);

    private bool TryBytes(string text, int start, int end, List<(int, int, int)> result)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        var ids = new int[bytes.Length];
        for (int b = 0; b < bytes.Length; b++)
            if (!_ids.TryGetValue(BpeModel.ByteFallbackPiece(bytes[b]), out ids[b])) return false;
        foreach (int id in ids) result.Add((id, start, end));
        return true;
    }

    /// <summary>The best segmentation as (start, end), runs of unknown pieces fused.</summary>
    private List<(int Start, int End)> BestPath(string sentence)
    {
        int size = sentence.Length;
        var score = new double[size + 1];
        var from = new int[size + 1];
        var id = new int[size + 1];
        Array.Fill(from, -1);
        for (int start = 0; start < size;)
        {
            double here = score[start];
            int length = UnicodeClasses.ScalarAt(sentence, start).Length;
            bool hasSingle = false;
            var node = _root;
            for (int i = start; i < size && node.Children is not null && node.Children.TryGetValue(sentence[i], out var child); i++)
            {
                node = child;
                if (node.Id < 0) continue;
                int end = i + 1;
                double candidate = _vocabulary[node.Id].Score + here;
                if (from[end] < 0 || candidate > score[end])
                {
                    score[end] = candidate;
                    from[end] = start;
                    id[end] = node.Id;
                }
                if (end - start == length) hasSingle = true;
            }
            if (!hasSingle)
            {
                int end = start + length;
                double candidate = _unknownScore + here;
                if (from[end] < 0 || candidate > score[end])
                {
                    score[end] = candidate;
                    from[end] = start;
                    id[end] = -2;       // unknown
                }
            }
            start += length;
        }
        var path = new List<(int, int)>();
        int unknownEnd = -1;
        for (int end = size; end > 0;)
        {
            int start = from[end];
            if (start < 0) throw new InvalidOperationException("The Unigram lattice has no path through the text.");
            bool unknown = id[end] == -2 || (_unknownId is int u && id[end] == u);
            if (unknown)
            {
                if (unknownEnd < 0) unknownEnd = end;
            }
            else
            {
                if (unknownEnd >= 0)
                {
                    path.Add((end, unknownEnd));
                    unknownEnd = -1;
                }
                path.Add((start, end));
            }
            end = start;
        }
        if (unknownEnd >= 0) path.Add((0, unknownEnd));
        path.Reverse();
        return path;
    }
}
