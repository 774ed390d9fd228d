using BenchmarkDotNet.Attributes;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Generation.Constraints;
using MLNetGpt.Tokenization;

namespace MLNetGpt.Bench;

/// <summary>
/// Structured-output costs with GPT-2's vocabulary: compiling a constraint, the first visit of a
/// state (walking the vocabulary trie against the automaton), and the per-step work after warm-up
/// (the cached allowed set plus masking 50,257 logits).
/// </summary>
[MemoryDiagnoser]
public class ConstraintBenchmarks
{
    private const int Eos = 50256;

    private static readonly Dictionary<string, Func<OutputConstraint>> Constraints = new()
    {
        ["choices"] = () => OutputConstraint.Choices(["positive", "negative", "neutral", "mixed", "unknown"]),
        ["regex"] = () => OutputConstraint.Regex(@"\d{3}-[A-Z]{2}(-\d+)?|[a-z ]{10,30}"),
        ["json"] = () => OutputConstraint.JsonSchema("""
            {"type":"object","properties":{"name":{"type":"string","maxLength":40},"age":{"type":"integer","minimum":0,"maximum":120},
             "email":{"type":"string","format":"email"},"tags":{"type":"array","items":{"enum":["x","y","z"]},"maxItems":5},
             "score":{"type":"number","minimum":-1,"maximum":1}},"required":["name","age"]}
            """),
    };

    private TokenByteTable _table = null!;
    private CompiledConstraint _compiled = null!;
    private OutputConstraint _constraint = null!;
    private int _state;
    private int _token;
    private float[] _logits = [];

    [Params("choices", "regex", "json")]
    public string Constraint { get; set; } = "json";

    [GlobalSetup]
    public void Setup()
    {
        _table = TokenByteTable.For(TiktokenTokenizer.CreateForModel("gpt2"), 50257);
        _constraint = Constraints[Constraint]();
        _compiled = CompiledConstraint.For(_constraint, _table, [Eos]);
        // A state one token in: for JSON, inside the first string value (the widest mask).
        _state = _compiled.Start;
        string prefix = Constraint switch { "json" => "{\"name\":\"A", "regex" => "12", _ => "pos" };
        foreach (byte b in System.Text.Encoding.UTF8.GetBytes(prefix)) _state = _constraint.Automaton.Next(_state, b);
        _token = _compiled.Allowed(_state, 1000).ToArray()[^1];
        var random = new Random(1);
        _logits = Enumerable.Range(0, 50257).Select(_ => (float)(random.NextDouble() * 20 - 10)).ToArray();
    }

    /// <summary>Parse, build the NFA and the DFA's start state (what the factory does).</summary>
    [Benchmark]
    public OutputConstraint Compile() => Constraints[Constraint]();

    /// <summary>A state's first visit: the trie walk that builds its allowed set (a fresh compiled form each time).</summary>
    [Benchmark]
    public int FirstVisit() => new CompiledConstraint(_constraint, _table, [Eos]).Allowed(_state, 1000).Count;

    /// <summary>The per-step work after warm-up: the cached set and masking the logits row.</summary>
    [Benchmark(Baseline = true)]
    public float Step()
    {
        var allowed = _compiled.Allowed(_state, 1000);
        allowed.Apply(_logits);
        return _logits[_token];
    }

    /// <summary>Moving a row's state by one chosen token.</summary>
    [Benchmark]
    public int Advance() => _compiled.Advance(_state, _token);
}
