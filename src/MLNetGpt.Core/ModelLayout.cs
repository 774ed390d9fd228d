namespace MLNetGpt;

/// <summary>How the ONNX files of a model folder are arranged.</summary>
public enum ModelLayout
{
    /// <summary>One decoder file with past inputs (Optimum <c>model.onnx</c>); it serves both prefill (empty past) and decode.</summary>
    OptimumDecoder,

    /// <summary>Optimum <c>decoder_model_merged.onnx</c>: one file whose <c>use_cache_branch</c> input selects prefill or decode.</summary>
    OptimumMergedDecoder,

    /// <summary>Optimum pair: <c>decoder_model.onnx</c> (prefill, no past inputs) and <c>decoder_with_past_model.onnx</c> (decode).</summary>
    OptimumDecoderPair,

    /// <summary>An ONNX Runtime GenAI folder described by <c>genai_config.json</c> (including its model builder's output).</summary>
    OnnxRuntimeGenAI,

    /// <summary>
    /// The onnx-community / transformers.js layout: configuration and tokenizer at the root, one
    /// decoder per precision under <c>onnx/</c> (<c>model.onnx</c>, <c>model_fp16.onnx</c>, <c>model_q4.onnx</c>, ...);
    /// see <see cref="GptModelOptions.Variant"/>.
    /// </summary>
    OnnxCommunity,
}
