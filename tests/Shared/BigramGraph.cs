using System.Text.Json;
using MLNetGpt.Training;

namespace MLNetGpt.Tests.Training;

/// <summary>
/// An exact training graph for testing the trainer: a low-rank bigram language model, logits(position) =
/// E[input] · U + b, with the summed next-token cross-entropy over counted targets and its analytic gradient
/// (d logits = softmax - one-hot; dE[x] += U · d; dU += E[x]ᵀ ⊗ d; db += d), computed in double and stored in float.
/// E and U decay, b does not. Its <see cref="WriteModelFolder"/> copies a real model folder (so the tuned folder opens)
/// and adds the trained values as <c>bigram-weights.json</c>.
/// </summary>
internal sealed class BigramGraph : ITrainingGraph
{
    public const string WeightsFile = "bigram-weights.json";

    private readonly int _vocabulary;
    private readonly int _dimension;
    private readonly string? _template;

    public BigramGraph(int vocabulary, int dimension, int maxSequenceLength = 64, int seed = 1, string? template = null)
    {
        _vocabulary = vocabulary;
        _dimension = dimension;
        _template = template;
        MaxSequenceLength = maxSequenceLength;
        var random = new Random(seed);
        float Draw(double scale) => (float)((random.NextDouble() * 2 - 1) * scale);
        Parameters =
        [
            new TrainableTensor("embedding", [vocabulary, dimension], Enumerable.Range(0, vocabulary * dimension).Select(_ => Draw(0.5)).ToArray(), decay: true),
            new TrainableTensor("output", [dimension, vocabulary], Enumerable.Range(0, dimension * vocabulary).Select(_ => Draw(0.5)).ToArray(), decay: true),
            new TrainableTensor("bias", [vocabulary], Enumerable.Range(0, vocabulary).Select(_ => Draw(0.1)).ToArray(), decay: false),
        ];
    }

    public IReadOnlyList<TrainableTensor> Parameters { get; }

    public int VocabularySize => _vocabulary;

    public int MaxSequenceLength { get; }

    public TrainableTensor Embedding => Parameters[0];

    public TrainableTensor Output => Parameters[1];

    public TrainableTensor Bias => Parameters[2];

    /// <summary>Forward-backward calls so far.</summary>
    public int ForwardBackwardCalls { get; private set; }

    /// <summary>Evaluate calls so far.</summary>
    public int EvaluateCalls { get; private set; }

    /// <summary>The inputs of every forward-backward call, in order.</summary>
    public List<long[]> Batches { get; } = [];

    /// <summary>Called before every forward-backward pass with the call's number (1-based), e.g. to cancel a run.</summary>
    public Action<int>? BeforeForwardBackward { get; set; }

    /// <summary>Replaces the validation loss per evaluation (1-based call number) to script early stopping.</summary>
    public Func<int, double>? ScriptedValidationLoss { get; set; }

    /// <summary>Whether <see cref="Dispose"/> ran.</summary>
    public bool Disposed { get; private set; }

    public (double LossSum, int Tokens) ForwardBackward(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> targets, int batch, int sequence)
    {
        ForwardBackwardCalls++;
        BeforeForwardBackward?.Invoke(ForwardBackwardCalls);
        Batches.Add(inputIds.ToArray());
        var dE = new double[Embedding.Value.Length];
        var dU = new double[Output.Value.Length];
        var db = new double[Bias.Value.Length];
        var result = Run(inputIds, targets, batch, sequence, (x, d) =>
        {
            for (int v = 0; v < _vocabulary; v++) db[v] += d[v];
            for (int k = 0; k < _dimension; k++)
            {
                double e = Embedding.Value[x * _dimension + k], sum = 0;
                for (int v = 0; v < _vocabulary; v++)
                {
                    dU[k * _vocabulary + v] += e * d[v];
                    sum += Output.Value[k * _vocabulary + v] * d[v];
                }
                dE[x * _dimension + k] += sum;
            }
        });
        for (int i = 0; i < dE.Length; i++) Embedding.Gradient[i] = (float)dE[i];
        for (int i = 0; i < dU.Length; i++) Output.Gradient[i] = (float)dU[i];
        for (int i = 0; i < db.Length; i++) Bias.Gradient[i] = (float)db[i];
        return result;
    }

    public (double LossSum, int Tokens) Evaluate(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> targets, int batch, int sequence)
    {
        EvaluateCalls++;
        var result = Run(inputIds, targets, batch, sequence, null);
        return ScriptedValidationLoss is { } script ? (script(EvaluateCalls) * result.Tokens, result.Tokens) : result;
    }

    /// <summary>The summed loss in double (for finite differences).</summary>
    public double LossSum(long[] inputIds, long[] targets, int batch, int sequence) => Run(inputIds, targets, batch, sequence, null).LossSum;

    private (double LossSum, int Tokens) Run(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> targets, int batch, int sequence, Action<int, double[]>? backward)
    {
        if (inputIds.Length != batch * sequence || targets.Length != batch * sequence)
            throw new ArgumentException($"{inputIds.Length} inputs and {targets.Length} targets for {batch} x {sequence}.");
        if (sequence > MaxSequenceLength) throw new ArgumentException($"sequence {sequence} > {MaxSequenceLength}");
        double lossSum = 0;
        int tokens = 0;
        var logits = new double[_vocabulary];
        for (int position = 0; position < inputIds.Length; position++)
        {
            long target = targets[position];
            if (target == SequencePacker.Ignored) continue;
            int x = checked((int)inputIds[position]);
            if (x < 0 || x >= _vocabulary || target < 0 || target >= _vocabulary) throw new ArgumentOutOfRangeException(nameof(inputIds), $"id out of range at {position}");
            double max = double.NegativeInfinity;
            for (int v = 0; v < _vocabulary; v++)
            {
                double sum = Bias.Value[v];
                for (int k = 0; k < _dimension; k++) sum += (double)Embedding.Value[x * _dimension + k] * Output.Value[k * _vocabulary + v];
                logits[v] = sum;
                max = Math.Max(max, sum);
            }
            double total = 0;
            for (int v = 0; v < _vocabulary; v++) total += Math.Exp(logits[v] - max);
            double logSumExp = max + Math.Log(total);
            lossSum += logSumExp - logits[target];
            tokens++;
            if (backward is null) continue;
            var d = new double[_vocabulary];
            for (int v = 0; v < _vocabulary; v++) d[v] = Math.Exp(logits[v] - logSumExp);
            d[target] -= 1;
            backward(x, d);
        }
        return (lossSum, tokens);
    }

    public void WriteModelFolder(string outputFolder)
    {
        Directory.CreateDirectory(outputFolder);
        if (_template is not null)
            foreach (var file in Directory.GetFiles(_template))
                File.Copy(file, Path.Combine(outputFolder, Path.GetFileName(file)));
        File.WriteAllText(Path.Combine(outputFolder, WeightsFile),
            JsonSerializer.Serialize(Parameters.ToDictionary(p => p.Name, p => p.Value)));
    }

    /// <summary>Reads the weights a <see cref="WriteModelFolder"/> wrote.</summary>
    public static Dictionary<string, float[]> ReadWeights(string folder) =>
        JsonSerializer.Deserialize<Dictionary<string, float[]>>(File.ReadAllText(Path.Combine(folder, WeightsFile)))!;

    public void Dispose() => Disposed = true;
}
