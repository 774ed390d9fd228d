using Microsoft.ML;

namespace MLNetGpt.Transforms;

/// <summary>
/// Reads the options of pipelines saved by MLNetGpt 0.1.0 (stage version 0x00010001), which wrote
/// them positionally in a binary layout: every nullable value has a presence flag. Later versions
/// write JSON (see <see cref="StageSettingsWriter"/>); this reader only keeps those old zips loading.
/// </summary>
internal static class LegacyOptionsFormat
{
    public static int? ReadInt(BinaryReader r) => r.ReadBoolean() ? r.ReadInt32() : null;
    public static float? ReadFloat(BinaryReader r) => r.ReadBoolean() ? r.ReadSingle() : null;
    public static bool? ReadBool(BinaryReader r) => r.ReadBoolean() ? r.ReadBoolean() : null;
    public static string? ReadString(BinaryReader r) => r.ReadBoolean() ? r.ReadString() : null;

    public static int[]? ReadInts(BinaryReader r)
    {
        int n = r.ReadInt32();
        if (n < 0) return null;
        var values = new int[n];
        for (int i = 0; i < n; i++) values[i] = r.ReadInt32();
        return values;
    }

    public static string[]? ReadStrings(BinaryReader r)
    {
        int n = r.ReadInt32();
        if (n < 0) return null;
        var values = new string[n];
        for (int i = 0; i < n; i++) values[i] = r.ReadString();
        return values;
    }

    public static GenerationOptions ReadGenerationOptions(BinaryReader r) => new()
    {
        MaxNewTokens = ReadInt(r),
        MinNewTokens = ReadInt(r),
        DoSample = ReadBool(r),
        Temperature = ReadFloat(r),
        TopK = ReadInt(r),
        TopP = ReadFloat(r),
        MinP = ReadFloat(r),
        RepetitionPenalty = ReadFloat(r),
        NoRepeatNgramSize = ReadInt(r),
        EosTokenIds = ReadInts(r),
        StopStrings = ReadStrings(r),
        Seed = ReadInt(r),
        ReturnLogProbabilities = ReadBool(r),
        PromptOverflow = ReadInt(r) is int overflow ? (PromptOverflow)overflow : null,
    };

    public static GptDevice? ReadDevice(BinaryReader r)
    {
        if (!r.ReadBoolean()) return null;
        int? id = ReadInt(r);
        bool fallback = r.ReadBoolean();
        return id is int gpu ? GptDevice.Cuda(gpu, fallback) : GptDevice.Cpu;
    }
}
