using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Tokenization;
using MLNetGpt.Transforms;

[assembly: LoadableClass(typeof(MLNetGpt.DecodeTokensTransformer), null, typeof(SignatureLoadModel),
    "MLNetGpt Decode Tokens", MLNetGpt.DecodeTokensTransformer.LoaderSignature)]

namespace MLNetGpt;

/// <summary>Options of <c>DecodeTokens</c>: token ids to text.</summary>
public sealed class DecodeTokensOptions
{
    /// <summary>The output text column.</summary>
    public required string OutputColumnName { get; set; }

    /// <summary>The input token-id column (Vector&lt;Int32&gt;); <see langword="null"/> means <see cref="OutputColumnName"/>.</summary>
    public string? InputColumnName { get; set; }

    /// <summary>The model folder whose tokenizer to use. Set this or <see cref="Encoding"/>.</summary>
    public string? ModelFolder { get; set; }

    /// <summary>A named encoding instead of a folder.</summary>
    public string? Encoding { get; set; }

    /// <summary>
    /// Cut the text at the first occurrence of any of these (as generation's stop strings are cut):
    /// generated ids include the tokens that formed a stop string.
    /// </summary>
    public IReadOnlyList<string>? StopStrings { get; set; }

    /// <summary>
    /// Leave special tokens (end-of-sequence, chat markers, BOS) out of the text, for every tokenizer
    /// kind alike (transformers' <c>skip_special_tokens=True</c>). Default true, as transformers'
    /// text-generation pipeline returns completions.
    /// </summary>
    public bool SkipSpecialTokens { get; set; } = true;

    /// <summary>
    /// Apply transformers' <c>clean_up_tokenization</c> (no space before <c>. ? ! ,</c> and the
    /// contractions <c>n't 'm 's 've 're</c>) after cutting at the stop strings. Default true, as
    /// transformers' text-generation pipeline returns completions.
    /// </summary>
    public bool CleanUpTokenizationSpaces { get; set; } = true;

    /// <summary>How a saved pipeline keeps the tokenizer files.</summary>
    public ModelStorage Storage { get; set; } = ModelStorage.Reference;
}

/// <summary>Estimator for <see cref="DecodeTokensTransformer"/>; nothing is trained.</summary>
public sealed class DecodeTokensEstimator : GptEstimatorBase<DecodeTokensTransformer>
{
    private readonly DecodeTokensOptions _options;

    internal DecodeTokensEstimator(IHostEnvironment env, DecodeTokensOptions options) : base(env)
    {
        _options = options;
        _ = new DecodeTokensTransformer(env, options);
    }

    private protected override string StageName => "DecodeTokens";

    internal override IEnumerable<(string Name, InputKind Kind)> InputColumns => [(_options.InputColumnName ?? _options.OutputColumnName, InputKind.TokenIds)];

    internal override IEnumerable<(string Name, DataViewType Type)> OutputColumns => [(_options.OutputColumnName, TextDataViewType.Instance)];

    private protected override DecodeTokensTransformer CreateTransformer() => new(Environment, _options);
}

/// <summary>Token ids to text. An empty vector gives empty text; ids outside the vocabulary are an error naming the row.</summary>
public sealed class DecodeTokensTransformer : GptTransformerBase
{
    internal const string LoaderSignature = "MLNetGptDecodeTokens";
    private readonly ModelSource _source;
    private readonly Tokenizer _tokenizer;
    private readonly string[] _stopStrings;

    internal DecodeTokensTransformer(IHostEnvironment env, DecodeTokensOptions options) : base(env, nameof(DecodeTokensTransformer))
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.OutputColumnName)) throw new ArgumentException("OutputColumnName is required.", nameof(options));
        if ((options.ModelFolder is null) == (options.Encoding is null))
            throw new ArgumentException("DecodeTokens needs exactly one of ModelFolder and Encoding.", nameof(options));
        OutputColumnName = options.OutputColumnName;
        InputColumnName = options.InputColumnName ?? options.OutputColumnName;
        _stopStrings = options.StopStrings?.ToArray() ?? [];
        if (_stopStrings.Any(string.IsNullOrEmpty)) throw new ArgumentException("Stop strings must be non-empty.", nameof(options));
        SkipSpecialTokens = options.SkipSpecialTokens;
        CleanUpTokenizationSpaces = options.CleanUpTokenizationSpaces;
        _source = options.ModelFolder is not null ? ModelSource.ForFolder(options.ModelFolder, options.Storage) : ModelSource.ForEncoding(options.Encoding!);
        _tokenizer = _source.GetTokenizer();
    }

    // Saved-format history (ModelVerWritten):
    //   0x00010001  MLNetGpt 0.1.0: binary settings (LegacyOptionsFormat), model source.
    //   0x00010002  JSON settings (StageSettings), model source.
    //   0x00010003  JSON settings gain "skip_special_tokens" and "clean_up_tokenization_spaces"; older zips
    //               read as skipping special tokens without clean-up (their text stays as it was).
    private const uint VersionBinary = 0x00010001;
    private const uint VersionJson = 0x00010002;
    private const uint VersionDecodeRule = 0x00010003;

    private DecodeTokensTransformer(IHostEnvironment env, ModelLoadContext ctx) : base(env, nameof(DecodeTokensTransformer))
    {
        ctx.CheckAtModel(GetVersionInfo());
        var r = ctx.Reader;
        if (ctx.Header.ModelVerWritten == VersionBinary)
        {
            // string output, string input, string[] stop strings
            OutputColumnName = r.ReadString();
            InputColumnName = r.ReadString();
            _stopStrings = LegacyOptionsFormat.ReadStrings(r) ?? [];
            SkipSpecialTokens = true;
        }
        else
        {
            var s = new StageSettingsReader(r.ReadString(), StageName);
            OutputColumnName = s.RequiredString("output_column");
            InputColumnName = s.RequiredString("input_column");
            _stopStrings = s.Strings("stop_strings") ?? [];
            SkipSpecialTokens = s.Bool("skip_special_tokens", true);
            CleanUpTokenizationSpaces = s.Bool("clean_up_tokenization_spaces", false);
            s.EnsureAllRead();
        }
        _source = ModelSource.Load(ctx, Warn);
        _tokenizer = _source.GetTokenizer();
    }

    /// <summary>The output text column.</summary>
    public string OutputColumnName { get; }

    /// <summary>The input token-id column.</summary>
    public string InputColumnName { get; }

    /// <summary>Texts at whose first occurrence the output is cut.</summary>
    public IReadOnlyList<string> StopStrings => _stopStrings;

    /// <summary>Whether special tokens are left out of the text.</summary>
    public bool SkipSpecialTokens { get; }

    /// <summary>Whether transformers' clean-up of tokenization spaces is applied.</summary>
    public bool CleanUpTokenizationSpaces { get; }

    private protected override string StageName => "DecodeTokens";

    internal override IReadOnlyList<(string Name, InputKind Kind)> InputColumns => [(InputColumnName, InputKind.TokenIds)];

    internal override IReadOnlyList<(string Name, DataViewType Type)> OutputColumns => [(OutputColumnName, TextDataViewType.Instance)];

    internal override int LookAhead => 1;   // cheap per row: read only what the consumer asks for

    internal override RowStreamMapper CreateMapper() => new Mapper(this);

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "GPTDECTK", verWrittenCur: VersionDecodeRule, verReadableCur: VersionDecodeRule, verWeCanReadBack: VersionBinary,
        loaderSignature: LoaderSignature, loaderAssemblyName: typeof(DecodeTokensTransformer).Assembly.FullName);

    private protected override void SaveModel(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        ctx.Writer.Write(new StageSettingsWriter()
            .String("output_column", OutputColumnName)
            .String("input_column", InputColumnName)
            .Strings("stop_strings", _stopStrings)
            .Bool("skip_special_tokens", SkipSpecialTokens)
            .Bool("clean_up_tokenization_spaces", CleanUpTokenizationSpaces)
            .ToString());
        _source.Save(ctx, tokenizerOnly: true);
    }


    internal string Decode(int[] ids, long row)
    {
        if (ids.Length == 0) return "";
        string text;
        try
        {
            text = TokenDecoding.Decode(_tokenizer, ids, SkipSpecialTokens, cleanUpTokenizationSpaces: false);
        }
        catch (Exception e) when (e is ArgumentException or KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidOperationException($"{Describe(row, InputColumnName)}: the ids could not be decoded ({e.Message}).", e);
        }
        foreach (var stop in _stopStrings)
        {
            int at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0) text = text[..at];
        }
        return CleanUpTokenizationSpaces ? TokenDecoding.CleanUpTokenizationSpaces(text) : text;
    }

    private sealed class Mapper(DecodeTokensTransformer owner) : BatchRowMapper(256)
    {
        protected override object?[][] MapBatch(IReadOnlyList<RowInput> rows, CancellationToken cancellationToken)
        {
            var outputs = new object?[rows.Count][];
            for (int i = 0; i < rows.Count; i++)
                outputs[i] = [owner.Decode((int[])rows[i].Values[0]!, rows[i].Index).AsMemory()];
            return outputs;
        }
    }
}
