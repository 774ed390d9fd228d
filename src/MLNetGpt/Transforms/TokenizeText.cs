using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Transforms;

[assembly: LoadableClass(typeof(MLNetGpt.TokenizeTextTransformer), null, typeof(SignatureLoadModel),
    "MLNetGpt Tokenize Text", MLNetGpt.TokenizeTextTransformer.LoaderSignature)]

namespace MLNetGpt;

/// <summary>Options of <c>TokenizeText</c>: text to token ids with a model folder's tokenizer (or a named encoding).</summary>
public sealed class TokenizeTextOptions
{
    private int? _maxTokens;

    /// <summary>The output column (variable-length Vector&lt;Int32&gt;).</summary>
    public required string OutputColumnName { get; set; }

    /// <summary>The input text column; <see langword="null"/> means <see cref="OutputColumnName"/>.</summary>
    public string? InputColumnName { get; set; }

    /// <summary>The model folder whose tokenizer to use. Set this or <see cref="Encoding"/>.</summary>
    public string? ModelFolder { get; set; }

    /// <summary>A named encoding (<c>gpt2</c>, <c>r50k_base</c>, <c>cl100k_base</c>, <c>o200k_base</c>) instead of a folder.</summary>
    public string? Encoding { get; set; }

    /// <summary>Keep at most this many tokens per row (&gt; 0); <see langword="null"/> keeps all.</summary>
    public int? MaxTokens
    {
        get => _maxTokens;
        set => _maxTokens = value is null || value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(MaxTokens), value, "MaxTokens must be greater than 0.");
    }

    /// <summary>When cutting to <see cref="MaxTokens"/>, drop tokens from the start (the default, as prompts want their end) or from the end.</summary>
    public bool TruncateFromStart { get; set; } = true;

    /// <summary>
    /// Prepend the model's beginning-of-sequence token id to every row. <see langword="null"/> (the
    /// default) follows the folder's tokenizer_config.json <c>add_bos_token</c>, as generation from text does.
    /// </summary>
    public bool? AddBeginningOfSequence { get; set; }

    /// <summary>How a saved pipeline keeps the tokenizer files.</summary>
    public ModelStorage Storage { get; set; } = ModelStorage.Reference;
}

/// <summary>Estimator for <see cref="TokenizeTextTransformer"/>; nothing is trained.</summary>
public sealed class TokenizeTextEstimator : GptEstimatorBase<TokenizeTextTransformer>
{
    private readonly TokenizeTextOptions _options;

    internal TokenizeTextEstimator(IHostEnvironment env, TokenizeTextOptions options) : base(env)
    {
        _options = options;
        _ = new TokenizeTextTransformer(env, options);   // validates the options and the tokenizer now
    }

    private protected override string StageName => "TokenizeText";

    internal override IEnumerable<(string Name, InputKind Kind)> InputColumns => [(_options.InputColumnName ?? _options.OutputColumnName, InputKind.Text)];

    internal override IEnumerable<(string Name, DataViewType Type)> OutputColumns => [(_options.OutputColumnName, new VectorDataViewType(NumberDataViewType.Int32))];

    private protected override TokenizeTextTransformer CreateTransformer() => new(Environment, _options);
}

/// <summary>Text to token ids. Empty text gives an empty vector (or just the BOS id).</summary>
public sealed class TokenizeTextTransformer : GptTransformerBase
{
    internal const string LoaderSignature = "MLNetGptTokenizeText";
    private readonly ModelSource _source;
    private readonly Tokenizer _tokenizer;
    private readonly int? _bos;

    internal TokenizeTextTransformer(IHostEnvironment env, TokenizeTextOptions options) : base(env, nameof(TokenizeTextTransformer))
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.OutputColumnName)) throw new ArgumentException("OutputColumnName is required.", nameof(options));
        if ((options.ModelFolder is null) == (options.Encoding is null))
            throw new ArgumentException("TokenizeText needs exactly one of ModelFolder and Encoding.", nameof(options));
        OutputColumnName = options.OutputColumnName;
        InputColumnName = options.InputColumnName ?? options.OutputColumnName;
        MaxTokens = options.MaxTokens;
        TruncateFromStart = options.TruncateFromStart;
        _source = options.ModelFolder is not null ? ModelSource.ForFolder(options.ModelFolder, options.Storage) : ModelSource.ForEncoding(options.Encoding!);
        var (bos, addBos) = _source.Folder is not null ? Models.ModelFolder.ReadBos(_source.Folder) : (null, false);
        AddBeginningOfSequence = options.AddBeginningOfSequence ?? addBos;
        _tokenizer = _source.GetTokenizer();
        _bos = !AddBeginningOfSequence ? null
            : bos ?? throw new ArgumentException($"AddBeginningOfSequence is set, but {_source} defines no bos_token_id.", nameof(options));
    }

    // Saved-format history (ModelVerWritten):
    //   0x00010001  MLNetGpt 0.1.0: binary settings (LegacyOptionsFormat), model source.
    //   0x00010002  JSON settings (StageSettings), model source.
    private const uint VersionBinary = 0x00010001;
    private const uint VersionJson = 0x00010002;

    private TokenizeTextTransformer(IHostEnvironment env, ModelLoadContext ctx) : base(env, nameof(TokenizeTextTransformer))
    {
        ctx.CheckAtModel(GetVersionInfo());
        var r = ctx.Reader;
        if (ctx.Header.ModelVerWritten == VersionBinary)
        {
            // string output, string input, int? max tokens, bool truncate from start, int? BOS id to prepend
            OutputColumnName = r.ReadString();
            InputColumnName = r.ReadString();
            MaxTokens = LegacyOptionsFormat.ReadInt(r);
            TruncateFromStart = r.ReadBoolean();
            _bos = LegacyOptionsFormat.ReadInt(r);
        }
        else
        {
            var s = new StageSettingsReader(r.ReadString(), StageName);
            OutputColumnName = s.RequiredString("output_column");
            InputColumnName = s.RequiredString("input_column");
            MaxTokens = s.Int("max_tokens");
            if (MaxTokens is < 1) throw new FormatException($"TokenizeText in the saved pipeline: 'max_tokens' must be 1 or more, but is {MaxTokens}.");
            TruncateFromStart = s.Bool("truncate_from_start", true);
            _bos = s.Int("prepend_bos_token_id");
            s.EnsureAllRead();
        }
        AddBeginningOfSequence = _bos is not null;
        _source = ModelSource.Load(ctx);
        _tokenizer = _source.GetTokenizer();
    }

    /// <summary>The output column.</summary>
    public string OutputColumnName { get; }

    /// <summary>The input text column.</summary>
    public string InputColumnName { get; }

    /// <summary>The most tokens kept per row, or null.</summary>
    public int? MaxTokens { get; }

    /// <summary>Whether truncation drops tokens from the start.</summary>
    public bool TruncateFromStart { get; }

    /// <summary>Whether the BOS id is prepended.</summary>
    public bool AddBeginningOfSequence { get; }

    private protected override string StageName => "TokenizeText";

    internal override IReadOnlyList<(string Name, InputKind Kind)> InputColumns => [(InputColumnName, InputKind.Text)];

    internal override IReadOnlyList<(string Name, DataViewType Type)> OutputColumns => [(OutputColumnName, new VectorDataViewType(NumberDataViewType.Int32))];

    internal override int LookAhead => 1;   // cheap per row: read only what the consumer asks for

    internal override RowStreamMapper CreateMapper() => new Mapper(this);

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "GPTTOKNZ", verWrittenCur: VersionJson, verReadableCur: VersionJson, verWeCanReadBack: VersionBinary,
        loaderSignature: LoaderSignature, loaderAssemblyName: typeof(TokenizeTextTransformer).Assembly.FullName);

    private protected override void SaveModel(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        ctx.Writer.Write(new StageSettingsWriter()
            .String("output_column", OutputColumnName)
            .String("input_column", InputColumnName)
            .Int("max_tokens", MaxTokens)
            .Bool("truncate_from_start", TruncateFromStart)
            .Int("prepend_bos_token_id", _bos)
            .ToString());
        _source.Save(ctx, tokenizerOnly: true);
    }


    internal int[] Tokenize(string text, long row)
    {
        try
        {
            Generation.PromptPreparer.EnsureValidUnicode(text, Describe(row, InputColumnName));
        }
        catch (ArgumentException e)
        {
            throw new InvalidOperationException(e.Message, e);
        }
        var ids = _tokenizer.EncodeToIds(text);
        IEnumerable<int> kept = ids;
        int budget = (MaxTokens ?? int.MaxValue) - (_bos is null ? 0 : 1);
        if (ids.Count > budget) kept = TruncateFromStart ? ids.Skip(ids.Count - budget) : ids.Take(budget);
        return _bos is int bos ? kept.Prepend(bos).ToArray() : kept.ToArray();
    }

    private sealed class Mapper(TokenizeTextTransformer owner) : BatchRowMapper(256)
    {
        protected override object?[][] MapBatch(IReadOnlyList<RowInput> rows, CancellationToken cancellationToken)
        {
            var outputs = new object?[rows.Count][];
            for (int i = 0; i < rows.Count; i++)
                outputs[i] = [ToVector(owner.Tokenize((string)rows[i].Values[0]!, rows[i].Index))];
            return outputs;
        }
    }

    internal static VBuffer<int> ToVector(int[] ids) => new(ids.Length, ids);
}
