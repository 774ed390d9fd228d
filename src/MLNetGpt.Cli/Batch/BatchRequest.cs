namespace MLNetGpt.Cli.Batch;

/// <summary>What a batch job was asked to do.</summary>
internal sealed record BatchRequest
{
    public required string Input { get; init; }
    public required string Output { get; init; }
    public string? Variant { get; init; }
    public required string ModelFolder { get; init; }
    public OutputFormat Format { get; init; }
    public int BatchSize { get; init; } = 8;
    public GptDevice Device { get; init; } = GptDevice.Cpu;
    public int? Threads { get; init; }
    public bool Resume { get; init; }
    public bool FailFast { get; init; }
    public bool Quiet { get; init; }
    public bool ReportMemory { get; init; }

    /// <summary>The shard of the input this run processes (<c>--shard K/N</c>); null: the whole input.</summary>
    public ShardAssignment? Shard { get; init; }

    /// <summary>The error column's name; null: <c>error</c>, or <c>COMMAND_error</c> when the input already has an <c>error</c> column.</summary>
    public string? ErrorColumn { get; init; }

    // generate
    public string? PromptColumn { get; init; }
    public string? Template { get; init; }
    public bool Chat { get; init; }
    public string? SystemPrompt { get; init; }
    public string OutputColumn { get; init; } = "completion";

    /// <summary>The draft model folder for speculative decoding (<c>--draft-model</c>); it does not change results.</summary>
    public string? DraftModelFolder { get; init; }
    public GenerationOptions Generation { get; init; } = new();

    /// <summary>With <c>--json-columns</c>: the schema's top-level properties, one added column each.</summary>
    public IReadOnlyList<string>? JsonColumns { get; init; }

    // score, classify
    public string? TextColumn { get; init; }

    // classify
    public IReadOnlyList<string> Labels { get; init; } = [];
    public bool LengthNormalized { get; init; }
    public bool Probabilities { get; init; }
}
