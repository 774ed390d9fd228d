using BenchmarkDotNet.Attributes;
using MLNetGpt.Generation;

namespace MLNetGpt.Bench;

/// <summary>The per-token CPU work beside the model: choosing a token from 50,257 logits.</summary>
[MemoryDiagnoser]
public class MicroBenchmarks
{
    private float[] _logits = [];
    private float[] _work = [];
    private readonly float[] _scratch = new float[50257];
    private int[]? _order;
    private float[]? _keys;

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        _logits = Enumerable.Range(0, 50257).Select(_ => (float)(random.NextDouble() * 20 - 10)).ToArray();
        _work = new float[_logits.Length];
    }

    [Benchmark(Baseline = true)]
    public int Greedy() => LogitsProcessors.ArgMax(_logits);

    [Benchmark]
    public int TopK50ThenSample()
    {
        _logits.CopyTo(_work, 0);
        LogitsProcessors.ApplyTopK(_work, 50, _scratch);
        return LogitsProcessors.Sample(_work, 0.5);
    }

    [Benchmark]
    public int TopP09ThenSample()
    {
        _logits.CopyTo(_work, 0);
        LogitsProcessors.ApplyTopP(_work, 0.9f, ref _order, ref _keys);
        return LogitsProcessors.Sample(_work, 0.5);
    }

    [Benchmark]
    public float LogProbability() => LogitsProcessors.LogProbability(_logits, 123);
}
