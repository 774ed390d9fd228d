using Microsoft.ML.Data;
using MLNetGpt;

namespace Microsoft.ML;

/// <summary>
/// MLNetGpt's stages on <c>mlContext.Transforms.Text</c>, in ML.NET's style: the output column
/// first, then the input column, then the model folder; an options overload for everything else.
/// </summary>
/// <example>
/// <code>
/// var pipeline = mlContext.Transforms.Text.GenerateText("Completion", "Prompt", modelFolder,
///     new GenerationOptions { MaxNewTokens = 32, DoSample = true, Seed = 1 });
/// var completions = pipeline.Fit(data).Transform(data);
/// </code>
/// </example>
public static class MLNetGptCatalog
{
    /// <summary>Text to token ids (Vector&lt;Int32&gt;) with the tokenizer of <paramref name="modelFolder"/>.</summary>
    /// <param name="catalog">The text transforms catalog.</param>
    /// <param name="outputColumnName">The token-id column to create.</param>
    /// <param name="inputColumnName">The text column; null means <paramref name="outputColumnName"/>.</param>
    /// <param name="modelFolder">A model folder holding tokenizer files (see <see cref="GptModel.Open"/>).</param>
    /// <param name="maxTokens">Keep at most this many tokens (the last ones); null keeps all.</param>
    public static TokenizeTextEstimator TokenizeText(this TransformsCatalog.TextTransforms catalog, string outputColumnName,
        string? inputColumnName, string modelFolder, int? maxTokens = null) =>
        TokenizeText(catalog, new TokenizeTextOptions
        {
            OutputColumnName = outputColumnName, InputColumnName = inputColumnName, ModelFolder = modelFolder, MaxTokens = maxTokens,
        });

    /// <summary>Text to token ids, with every option.</summary>
    public static TokenizeTextEstimator TokenizeText(this TransformsCatalog.TextTransforms catalog, TokenizeTextOptions options) =>
        new(Environment(catalog), options);

    /// <summary>Prompt token ids to generated token ids with the model in <paramref name="modelFolder"/>.</summary>
    /// <param name="catalog">The text transforms catalog.</param>
    /// <param name="outputColumnName">The generated-id column to create (Vector&lt;Int32&gt;).</param>
    /// <param name="inputColumnName">The prompt-id column; null means <paramref name="outputColumnName"/>.</param>
    /// <param name="modelFolder">The model folder.</param>
    /// <param name="generation">Decoding controls; null takes the model's defaults.</param>
    /// <param name="batchSize">Rows generated together.</param>
    public static GenerateTokensEstimator GenerateTokens(this TransformsCatalog.TextTransforms catalog, string outputColumnName,
        string? inputColumnName, string modelFolder, GenerationOptions? generation = null, int batchSize = 8) =>
        GenerateTokens(catalog, new GenerateTokensOptions
        {
            OutputColumnName = outputColumnName, InputColumnName = inputColumnName, ModelFolder = modelFolder,
            Generation = generation ?? new GenerationOptions(), BatchSize = batchSize,
        });

    /// <summary>Prompt token ids to generated token ids, with every option.</summary>
    public static GenerateTokensEstimator GenerateTokens(this TransformsCatalog.TextTransforms catalog, GenerateTokensOptions options) =>
        new(Environment(catalog), options);

    /// <summary>Token ids to text with the tokenizer of <paramref name="modelFolder"/>.</summary>
    public static DecodeTokensEstimator DecodeTokens(this TransformsCatalog.TextTransforms catalog, string outputColumnName,
        string? inputColumnName, string modelFolder) =>
        DecodeTokens(catalog, new DecodeTokensOptions { OutputColumnName = outputColumnName, InputColumnName = inputColumnName, ModelFolder = modelFolder });

    /// <summary>Token ids to text, with every option.</summary>
    public static DecodeTokensEstimator DecodeTokens(this TransformsCatalog.TextTransforms catalog, DecodeTokensOptions options) =>
        new(Environment(catalog), options);

    /// <summary>
    /// Prompt text to generated text: TokenizeText → GenerateTokens → DecodeTokens in one chain.
    /// The intermediate columns <c>{outputColumnName}_PromptTokens</c> and <c>{outputColumnName}_Tokens</c>
    /// stay in the output.
    /// </summary>
    /// <param name="catalog">The text transforms catalog.</param>
    /// <param name="outputColumnName">The generated-text column to create.</param>
    /// <param name="inputColumnName">The prompt column; null means <paramref name="outputColumnName"/>.</param>
    /// <param name="modelFolder">The model folder.</param>
    /// <param name="generation">Decoding controls; null takes the model's defaults.</param>
    /// <param name="batchSize">Rows generated together.</param>
    public static EstimatorChain<ITransformer> GenerateText(this TransformsCatalog.TextTransforms catalog, string outputColumnName,
        string? inputColumnName, string modelFolder, GenerationOptions? generation = null, int batchSize = 8) =>
        GenerateText(catalog, new GenerateTextOptions
        {
            OutputColumnName = outputColumnName, InputColumnName = inputColumnName, ModelFolder = modelFolder,
            Generation = generation ?? new GenerationOptions(), BatchSize = batchSize,
        });

    /// <summary>Prompt text to generated text, with every option.</summary>
    public static EstimatorChain<ITransformer> GenerateText(this TransformsCatalog.TextTransforms catalog, GenerateTextOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var env = Environment(catalog);
        string promptTokens = options.PromptTokensColumnName ?? options.OutputColumnName + "_PromptTokens";
        string tokens = options.TokensColumnName ?? options.OutputColumnName + "_Tokens";
        return new EstimatorChain<ITransformer>()
            .Append<ITransformer>(new TokenizeTextEstimator(env, new TokenizeTextOptions
            {
                OutputColumnName = promptTokens, InputColumnName = options.InputColumnName ?? options.OutputColumnName,
                ModelFolder = options.ModelFolder, Storage = options.Storage,
                Chat = options.Chat, SystemPrompt = options.SystemPrompt, ChatTemplateName = options.ChatTemplateName,
            }))
            .Append<ITransformer>(new GenerateTokensEstimator(env, options.ForTokens(tokens, promptTokens)))
            .Append<ITransformer>(new DecodeTokensEstimator(env, new DecodeTokensOptions
            {
                OutputColumnName = options.OutputColumnName, InputColumnName = tokens, ModelFolder = options.ModelFolder,
                StopStrings = options.Generation?.StopStrings, Storage = options.Storage,
                SkipSpecialTokens = options.Generation?.SkipSpecialTokens ?? true,
                CleanUpTokenizationSpaces = options.Generation?.CleanUpTokenizationSpaces ?? true,
            }));
    }

    /// <summary>Per-row perplexity (and log-likelihood and token count) of a text column.</summary>
    /// <param name="catalog">The text transforms catalog.</param>
    /// <param name="outputColumnName">The perplexity column to create; <c>LogLikelihood</c> and <c>TokenCount</c> are created too.</param>
    /// <param name="textColumnName">The text to score.</param>
    /// <param name="modelFolder">The model folder.</param>
    /// <param name="promptColumnName">Optional prompt column the text continues (not scored).</param>
    public static ScoreTextEstimator ScoreText(this TransformsCatalog.TextTransforms catalog, string outputColumnName,
        string textColumnName, string modelFolder, string? promptColumnName = null) =>
        ScoreText(catalog, new ScoreTextOptions
        {
            OutputColumnName = outputColumnName, TextColumnName = textColumnName, ModelFolder = modelFolder, PromptColumnName = promptColumnName,
        });

    /// <summary>Per-row perplexity, with every option.</summary>
    public static ScoreTextEstimator ScoreText(this TransformsCatalog.TextTransforms catalog, ScoreTextOptions options) =>
        new(Environment(catalog), options);

    /// <summary>
    /// Zero-shot classification: the label (of <paramref name="labels"/>) the model finds the most
    /// likely continuation of the prompt <paramref name="template"/> renders for each row. Outputs a
    /// key-typed predicted label (key values = the labels) and a <c>Score</c> vector of probabilities
    /// over the labels, ready for <c>MulticlassClassification.Evaluate</c> and <c>MapKeyToValue</c>.
    /// </summary>
    /// <param name="catalog">The text transforms catalog.</param>
    /// <param name="outputColumnName">The predicted-label column to create (a key over the labels).</param>
    /// <param name="inputColumnName">The text column to classify.</param>
    /// <param name="modelFolder">The model folder.</param>
    /// <param name="labels">Two or more distinct labels; each usually starts with a space (" positive").</param>
    /// <param name="template">The prompt, with <c>{input}</c> for the row's text.</param>
    public static ClassifyTextEstimator ClassifyText(this TransformsCatalog.TextTransforms catalog, string outputColumnName, string inputColumnName,
        string modelFolder, IReadOnlyList<string> labels, string template = "{input}") =>
        ClassifyText(catalog, new ClassifyTextOptions
        {
            OutputColumnName = outputColumnName, InputColumnName = inputColumnName, ModelFolder = modelFolder, Labels = labels, Template = template,
        });

    /// <summary>Zero-shot classification, with every option.</summary>
    public static ClassifyTextEstimator ClassifyText(this TransformsCatalog.TextTransforms catalog, ClassifyTextOptions options) =>
        new(Environment(catalog), options);

    /// <summary>
    /// Fine-tunes the model in <paramref name="modelFolder"/> on a text column: <c>Fit</c> trains (full fine-tuning with
    /// the defaults of <see cref="FineTuneOptions"/>), writes the tuned model to <paramref name="outputFolder"/>, and
    /// returns a stage that scores the text column with it (the <c>ScoreText</c> columns) and carries the run's report.
    /// </summary>
    /// <param name="catalog">The text transforms catalog.</param>
    /// <param name="outputColumnName">The perplexity column the fitted stage adds; null means <c>Perplexity</c>.</param>
    /// <param name="textColumnName">The text column to learn.</param>
    /// <param name="modelFolder">The model folder to tune (left unchanged).</param>
    /// <param name="outputFolder">Where the tuned model folder is written (new or empty).</param>
    public static FineTuneGptEstimator FineTuneGpt(this TransformsCatalog.TextTransforms catalog, string? outputColumnName, string textColumnName,
        string modelFolder, string outputFolder) =>
        FineTuneGpt(catalog, new FineTuneGptOptions
        {
            OutputColumnName = outputColumnName ?? "Perplexity", TextColumnName = textColumnName, ModelFolder = modelFolder, OutputFolder = outputFolder,
        });

    /// <summary>Fine-tunes with every option: LoRA or full, steps, batches, optimizer, validation, checkpoints, prompt/completion rows.</summary>
    public static FineTuneGptEstimator FineTuneGpt(this TransformsCatalog.TextTransforms catalog, FineTuneGptOptions options) =>
        new(Environment(catalog), options);

    private static Runtime.IHostEnvironment Environment(TransformsCatalog.TextTransforms catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return catalog.GetEnvironment();
    }
}
