using Microsoft.ML.OnnxRuntime;

namespace MLNetGpt.Models;

/// <summary>
/// The ONNX Runtime sessions of a model folder on one device: the main decoder (with past inputs)
/// and, for the Optimum pair layout, the prefill decoder, with the graph read from them. Both files
/// of a pair must run on the same device.
/// </summary>
internal sealed class DecoderSessions : IDisposable
{
    private DecoderSessions(InferenceSession main, InferenceSession? prefill, DecoderGraph graph, string provider)
    {
        Main = main;
        Prefill = prefill;
        Graph = graph;
        Provider = provider;
    }

    public InferenceSession Main { get; }
    public InferenceSession? Prefill { get; }
    public DecoderGraph Graph { get; }

    /// <summary><c>CPU</c> or <c>CUDA:N</c>.</summary>
    public string Provider { get; }

    public bool OnCuda => Provider.StartsWith("CUDA", StringComparison.Ordinal);

    public static DecoderSessions Open(ModelFolder folder, GptModelOptions options)
    {
        InferenceSession? main = null, prefill = null;
        try
        {
            string mainFile = folder.WithPastFile ?? folder.MainFile;
            (main, string provider) = SessionFactory.Open(Path.Combine(folder.Folder, mainFile), options, cudaAlreadyFailed: false);
            if (folder.WithPastFile is not null)
            {
                (prefill, string prefillProvider) = SessionFactory.Open(Path.Combine(folder.Folder, folder.MainFile), options,
                    cudaAlreadyFailed: provider == "CPU");
                if (prefillProvider != provider)
                    throw new GptModelException($"{folder.MainFile} runs on {prefillProvider} but {mainFile} on {provider}; both must share a device.");
            }
            var graph = DecoderGraph.Read(folder, main, mainFile, prefill, options.Write);
            return new DecoderSessions(main, prefill, graph, provider);
        }
        catch
        {
            main?.Dispose();
            prefill?.Dispose();
            throw;
        }
    }

    /// <summary>What the folder and the graph say, as the public description of the opened model.</summary>
    public GptModelInfo Describe(ModelFolder folder, string tokenizerSource, int? tokenizerIdCount, Action<string> warn)
    {
        int? bos = folder.BosTokenId;
        int context = folder.ContextLength!.Value;
        // The graph wins: positions past its position table (or rotary cache) cannot be computed.
        if (Graph.Facts.MaxPositions is int positions && positions < context)
        {
            warn($"{folder.Source(ShapeKey.Context)} says {context}, but {Graph.File}'s position table ({Graph.Facts.PositionSource}) has {positions} rows; " +
                $"using a context window of {positions}.");
            context = positions;
        }
        return new GptModelInfo
        {
            Folder = folder.Folder,
            Layout = folder.Layout,
            Variants = folder.Variants,
            Variant = folder.Variant,
            ModelFiles = folder.ModelFiles,
            Files = folder.UsedFiles,
            LayerCount = Graph.LayerCount,
            AttentionHeadCount = folder.HeadCount ?? Graph.KeyValueHeadCount,
            TokenizerIdCount = tokenizerIdCount,
            KeyValueHeadCount = Graph.KeyValueHeadCount,
            HeadSize = Graph.HeadSize,
            VocabularySize = Graph.VocabularySize,
            ContextLength = context,
            EosTokenIds = folder.EosTokenIds,
            BosTokenId = bos,
            AddBosToken = folder.AddBosToken && bos is not null,
            PadTokenId = folder.PadTokenId ?? (folder.EosTokenIds.Length > 0 ? folder.EosTokenIds[0] : 0),
            HasPositionIds = Graph.PositionIds is not null,
            CacheElementType = Graph.CacheType == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16 ? "float16" : "float32",
            TokenizerSource = tokenizerSource,
            ExecutionProvider = Provider,
            ModelDefaults = folder.Defaults,
        };
    }

    /// <summary>
    /// Checks the tokenizer against the logits. A tokenizer with far fewer ids than the logits does
    /// not belong to the model (a few unused trailing ids are common: vocabularies are padded to a
    /// round size, and those ids are never generated). One with more ids than the logits may still
    /// serve (test models cut a real vocabulary short): a warning says so, and a prompt holding an id
    /// the model cannot take is refused naming it. Returns the tokenizer's id count.
    /// </summary>
    public int? CheckTokenizer(int? idCount, string tokenizerSource, ModelFolder folder, Action<string> warn)
    {
        if (idCount is not int count) return null;
        int logits = Graph.VocabularySize;
        if (count > logits)
        {
            warn($"The tokenizer ({tokenizerSource}) has {count} ids, but {Graph.File} produces {logits} logits per position; " +
                $"prompts with ids of {logits} or more will be refused.");
            return count;
        }
        int gap = logits - count;
        if (gap > 1024 && gap > logits / 50)
            throw new GptModelException($"The tokenizer ({tokenizerSource}) has {count} ids, but {Graph.File} produces {logits} logits per position: " +
                "far more than a padded vocabulary would add, so the tokenizer does not belong to this model.");
        return count;
    }

    public void Dispose()
    {
        Main.Dispose();
        Prefill?.Dispose();
    }
}
