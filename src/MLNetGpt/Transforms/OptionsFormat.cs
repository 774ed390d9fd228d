using Microsoft.ML;

namespace MLNetGpt.Transforms;

/// <summary>Binary persistence of option values: every nullable value has a presence flag.</summary>
internal static class OptionsFormat
{
    public static void Write(BinaryWriter w, int? value)
    {
        w.Write(value.HasValue);
        if (value.HasValue) w.Write(value.Value);
    }

    public static void Write(BinaryWriter w, float? value)
    {
        w.Write(value.HasValue);
        if (value.HasValue) w.Write(value.Value);
    }

    public static void Write(BinaryWriter w, bool? value)
    {
        w.Write(value.HasValue);
        if (value.HasValue) w.Write(value.Value);
    }

    public static void Write(BinaryWriter w, string? value)
    {
        w.Write(value is not null);
        if (value is not null) w.Write(value);
    }

    public static void Write(BinaryWriter w, IReadOnlyList<int>? values)
    {
        w.Write(values is null ? -1 : values.Count);
        foreach (int v in values ?? []) w.Write(v);
    }

    public static void Write(BinaryWriter w, IReadOnlyList<string>? values)
    {
        w.Write(values is null ? -1 : values.Count);
        foreach (var v in values ?? []) w.Write(v);
    }

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

    public static void Write(BinaryWriter w, GenerationOptions o)
    {
        Write(w, o.MaxNewTokens);
        Write(w, o.MinNewTokens);
        Write(w, o.DoSample);
        Write(w, o.Temperature);
        Write(w, o.TopK);
        Write(w, o.TopP);
        Write(w, o.MinP);
        Write(w, o.RepetitionPenalty);
        Write(w, o.NoRepeatNgramSize);
        Write(w, o.EosTokenIds);
        Write(w, o.StopStrings);
        Write(w, o.Seed);
        Write(w, o.ReturnLogProbabilities);
        Write(w, o.PromptOverflow is { } overflow ? (int)overflow : null);
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

    public static void Write(BinaryWriter w, GptDevice? device)
    {
        w.Write(device is not null);
        if (device is null) return;
        Write(w, device.GpuDeviceId);
        w.Write(device.FallbackToCpu);
    }

    public static GptDevice? ReadDevice(BinaryReader r)
    {
        if (!r.ReadBoolean()) return null;
        int? id = ReadInt(r);
        bool fallback = r.ReadBoolean();
        return id is int gpu ? GptDevice.Cuda(gpu, fallback) : GptDevice.Cpu;
    }
}
