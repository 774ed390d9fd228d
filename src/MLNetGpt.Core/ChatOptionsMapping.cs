using Microsoft.Extensions.AI;

namespace MLNetGpt;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="ChatOptions"/> as <see cref="GenerationOptions"/> (the table of
/// docs/chat.md). A value the request sets replaces the client's default; an invalid one is refused naming the
/// <see cref="ChatOptions"/> property.
/// </summary>
internal static class ChatOptionsMapping
{
    public static GenerationOptions ToGenerationOptions(ChatOptions? options, GenerationOptions defaults, string modelId,
        CancellationToken cancellationToken = default)
    {
        var result = defaults.Clone();
        if (options is null) return result;

        if (options.ModelId is { } id && !string.Equals(id, modelId, StringComparison.Ordinal))
            throw new ArgumentException($"ChatOptions.ModelId is '{id}', but this client serves the model '{modelId}' only; leave ModelId null or set it to '{modelId}'.", nameof(options));
        if (options.ConversationId is not null)
            throw new NotSupportedException($"ChatOptions.ConversationId ('{options.ConversationId}') is not supported: the client keeps no conversations; send the whole history with each request.");
        if (options.ContinuationToken is not null)
            throw new NotSupportedException("ChatOptions.ContinuationToken is not supported: responses are never left running in the background.");
        Refuse(options.FrequencyPenalty, nameof(ChatOptions.FrequencyPenalty));
        Refuse(options.PresencePenalty, nameof(ChatOptions.PresencePenalty));

        // Hugging Face samples only with do_sample; a request that sets a sampling control means to sample,
        // except that temperature 0 means greedy.
        bool? sample = null;
        if (options.TopP is float topP)
        {
            Set(nameof(ChatOptions.TopP), topP, () => result.TopP = topP);
            sample = true;
        }
        if (options.TopK is int topK)
        {
            Set(nameof(ChatOptions.TopK), topK, () => result.TopK = topK);
            sample = true;
        }
        if (options.Temperature is float temperature)
        {
            Set(nameof(ChatOptions.Temperature), temperature, () => result.Temperature = temperature);
            sample = temperature > 0;
        }
        if (sample is bool doSample) result.DoSample = doSample;
        if (options.MaxOutputTokens is int maxTokens) Set(nameof(ChatOptions.MaxOutputTokens), maxTokens, () => result.MaxNewTokens = maxTokens);
        if (options.StopSequences is { } stops) Set(nameof(ChatOptions.StopSequences), string.Join(", ", stops), () => result.StopStrings = stops.ToArray());
        if (options.Seed is long seed)
        {
            if (seed is < int.MinValue or > int.MaxValue)
                throw new ArgumentOutOfRangeException($"{nameof(ChatOptions)}.{nameof(ChatOptions.Seed)}", seed,
                    $"ChatOptions.Seed must fit in 32 bits ({int.MinValue} to {int.MaxValue}), the seeds GenerationOptions takes; it is {seed}.");
            result.Seed = (int)seed;
        }
        switch (options.ResponseFormat)
        {
            case null or ChatResponseFormatText:
                break;
            case ChatResponseFormatJson { Schema: null }:
                result.Constraint = OutputConstraint.AnyJsonValue();
                break;
            case ChatResponseFormatJson { Schema: { } schema }:
                try
                {
                    result.Constraint = OutputConstraint.JsonSchema(schema.GetRawText(), cancellationToken);
                }
                catch (ArgumentException e)
                {
                    throw new ArgumentException($"ChatOptions.ResponseFormat's schema cannot be enforced: {e.Message}", nameof(options), e);
                }
                break;
            default:
                throw new NotSupportedException($"ChatOptions.ResponseFormat {options.ResponseFormat.GetType().Name} is not supported; use ChatResponseFormat.Text, Json or ForJsonSchema.");
        }
        return result;
    }

    private static void Refuse(float? penalty, string name)
    {
        if (penalty is null or 0f) return;
        throw new NotSupportedException($"ChatOptions.{name} ({penalty}) is not supported: it is OpenAI's additive penalty, which Hugging Face's " +
            "decoding controls have no exact counterpart for; set GenerationOptions.RepetitionPenalty (multiplicative) in the client's defaults " +
            "or through ChatOptions.RawRepresentationFactory instead.");
    }

    /// <summary>Applies a value through the GenerationOptions setter, renaming its range error after the ChatOptions property.</summary>
    private static void Set(string name, object value, Action apply)
    {
        try
        {
            apply();
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new ArgumentOutOfRangeException($"{nameof(ChatOptions)}.{name}", value, $"ChatOptions.{name} is out of range: {e.Message.Split(" (Parameter", 2)[0]}");
        }
    }
}
