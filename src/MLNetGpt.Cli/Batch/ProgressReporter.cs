using System.Diagnostics;
using Spectre.Console;

namespace MLNetGpt.Cli.Batch;

/// <summary>
/// Reports a batch job's progress on standard error: a live Spectre.Console bar on a terminal,
/// plain periodic lines when standard error is redirected, nothing with <c>--quiet</c>.
/// </summary>
internal abstract class ProgressReporter(long total, long resumed) : IDisposable
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    // Constructor parameters, not init properties: the live bar is built in its constructor, before an object
    // initializer would run, and a bar built with no total showed 100% from the first row.
    public long Total { get; } = total;
    public long Done { get; private set; }
    public long Failed { get; private set; }
    public long Tokens { get; private set; }
    public long Resumed { get; } = resumed;

    public TimeSpan Elapsed => _clock.Elapsed;

    public static ProgressReporter Create(bool quiet, long total, long resumed, string label)
    {
        if (quiet) return new Silent(total, resumed);
        if (!Console.IsErrorRedirected && AnsiConsole.Profile.Capabilities.Interactive)
            return new Live(label, total, resumed, AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }));
        return new Plain(label, total, resumed);
    }

    public void Row(bool failed, int tokens)
    {
        Done++;
        if (failed) Failed++;
        Tokens += tokens;
        Update();
    }

    protected abstract void Update();

    public string Rates(bool withEta = true)
    {
        double seconds = Math.Max(Elapsed.TotalSeconds, 1e-6);
        double rowsPerSecond = Done / seconds;
        string eta = withEta && Total > 0 && rowsPerSecond > 0 ? $", ETA {Format(TimeSpan.FromSeconds((Total - Resumed - Done) / rowsPerSecond))}" : "";
        // classify counts no tokens; "0 tokens/s" would read as a stall.
        string tokens = Tokens > 0 ? $", {Tokens / seconds:F0} tokens/s" : "";
        return $"{rowsPerSecond:F1} rows/s{tokens}{eta}";
    }

    public string Count() => Total > 0 ? $"{Resumed + Done}/{Total} rows ({100.0 * (Resumed + Done) / Total:F1}%)" : $"{Resumed + Done} rows";

    private static string Format(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{t.Minutes}m{t.Seconds:D2}s" : $"{t.Seconds}s";

    public virtual void Dispose() { }

    private sealed class Silent(long total, long resumed) : ProgressReporter(total, resumed)
    {
        protected override void Update() { }
    }

    private sealed class Plain(string label, long total, long resumed) : ProgressReporter(total, resumed)
    {
        private TimeSpan _last = TimeSpan.Zero;

        protected override void Update()
        {
            if (Elapsed - _last < TimeSpan.FromSeconds(2)) return;
            _last = Elapsed;
            Console.Error.WriteLine($"{label}: {Count()}, {Rates()}");
        }
    }

    /// <summary>The live bar on a terminal (the console is given, so tests can drive it through Spectre's test console).</summary>
    internal sealed class Live : ProgressReporter
    {
        private readonly IAnsiConsole _console;
        private readonly ManualResetEventSlim _finished = new();
        private readonly Task _render;
        private ProgressTask? _task;

        public Live(string label, long total, long resumed, IAnsiConsole console) : base(total, resumed)
        {
            _console = console;
            var ready = new ManualResetEventSlim();
            _render = Task.Run(() => _console.Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .Start(context =>
                {
                    _task = context.AddTask(label, maxValue: Math.Max(1, Total - Resumed));
                    ready.Set();
                    while (!_finished.Wait(200)) Refresh();
                    Refresh();
                }));
            ready.Wait(TimeSpan.FromSeconds(5));
        }

        /// <summary>The bar's maximum and value as the console last drew them (tests).</summary>
        internal (double Max, double Value) Bar
        {
            get
            {
                Refresh();
                return _task is null ? (0, 0) : (_task.MaxValue, _task.Value);
            }
        }

        private void Refresh()
        {
            if (_task is null) return;
            _task.Value = Done;
            _task.Description = Markup.Escape($"{Count()}, {Rates()}");
        }

        protected override void Update() { }

        public override void Dispose()
        {
            _finished.Set();
            _render.Wait(TimeSpan.FromSeconds(5));
        }
    }
}
