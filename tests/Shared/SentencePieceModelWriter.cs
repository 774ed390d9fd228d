using System.Text;

namespace MLNetGpt.Tests.Infrastructure;

/// <summary>
/// Writes a minimal SentencePiece <c>tokenizer.model</c> (the ModelProto protobuf of
/// google/sentencepiece, encoded by hand: pieces = 1, trainer_spec = 2, normalizer_spec = 3).
/// </summary>
public static class SentencePieceModelWriter
{
    public enum PieceType { Normal = 1, Unknown = 2, Control = 3 }

    /// <param name="bpe">BPE (model_type 2) or Unigram (1).</param>
    public static byte[] Write(IEnumerable<(string Piece, float Score, PieceType Type)> pieces, bool bpe)
    {
        var model = new MemoryStream();
        foreach (var (piece, score, type) in pieces)
        {
            var entry = new MemoryStream();
            WriteString(entry, 1, piece);
            WriteTag(entry, 2, 5);
            entry.Write(BitConverter.GetBytes(score));
            WriteTag(entry, 3, 0);
            WriteVarint(entry, (ulong)type);
            WriteBytes(model, 1, entry.ToArray());
        }
        var trainer = new MemoryStream();
        WriteTag(trainer, 3, 0);
        WriteVarint(trainer, bpe ? 2UL : 1UL);             // model_type
        WriteTag(trainer, 40, 0);
        WriteVarint(trainer, 0);                           // unk_id
        WriteTag(trainer, 41, 0);
        WriteVarint(trainer, 1);                           // bos_id
        WriteTag(trainer, 42, 0);
        WriteVarint(trainer, 2);                           // eos_id
        WriteBytes(model, 2, trainer.ToArray());
        var normalizer = new MemoryStream();
        WriteString(normalizer, 1, "identity");
        WriteTag(normalizer, 3, 0);
        WriteVarint(normalizer, 1);                        // add_dummy_prefix
        WriteTag(normalizer, 4, 0);
        WriteVarint(normalizer, 1);                        // remove_extra_whitespaces
        WriteTag(normalizer, 5, 0);
        WriteVarint(normalizer, 1);                        // escape_whitespaces
        WriteBytes(model, 3, normalizer.ToArray());
        return model.ToArray();
    }

    private static void WriteString(Stream s, int field, string value) => WriteBytes(s, field, Encoding.UTF8.GetBytes(value));

    private static void WriteBytes(Stream s, int field, byte[] value)
    {
        WriteTag(s, field, 2);
        WriteVarint(s, (ulong)value.Length);
        s.Write(value);
    }

    private static void WriteTag(Stream s, int field, int wireType) => WriteVarint(s, (ulong)((field << 3) | wireType));

    private static void WriteVarint(Stream s, ulong value)
    {
        while (value >= 0x80)
        {
            s.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        s.WriteByte((byte)value);
    }
}
