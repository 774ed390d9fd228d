using System.Diagnostics;
using Microsoft.Extensions.AI;

namespace MLNetGpt.Bench;

/// <summary>
/// Many callers of one model: the same 64 requests of 32 new tokens sent by 1, 4, 8 and 16 concurrent callers (each
/// sending its share one after another) through <see cref="GptModel.Generate(string, GenerationOptions?, CancellationToken)"/>
/// and through <see cref="GptChatClient"/> (streaming, for the time to the first token), against the same requests
/// one by one and as static batches of 8 (a loop of their own, no scheduler: the physical reference), and streaming
/// against Generate for one caller. Subjects are interleaved round by round (the order rotates); every output is
/// checked against the static batch's (Generate) or the lone chat requests' (chat).
/// </summary>
internal static class Concurrency
{
    public const int Requests = 64;
    public const int NewTokens = 32;

    public sealed class Subject
    {
        public string Name { get; set; } = "";
        public string Api { get; set; } = "";
        public int Callers { get; set; }
        public List<double> TokensPerSecond { get; set; } = [];
        public List<double> LatencyMs { get; set; } = [];
        public List<double> FirstTokenMs { get; set; } = [];
        public List<double> Loads { get; set; } = [];
        public int PeakRows { get; set; }

        /// <summary>Forward passes the scheduler ran for the subject, and the rows its decode steps served on average.</summary>
        public List<long> SchedulerSteps { get; set; } = [];
        public List<double> RowsPerDecodeStep { get; set; } = [];
        public bool Identical { get; set; } = true;
    }

    public sealed class StreamingCost
    {
        /// <summary>Per request: Generate's latency over 32 tokens, a streamed request's, its first piece, and Generate of one token.</summary>
        public List<double> GenerateMs { get; set; } = [];
        public List<double> StreamMs { get; set; } = [];
        public List<double> StreamFirstPieceMs { get; set; } = [];
        public List<double> OneTokenGenerateMs { get; set; } = [];

        /// <summary>Gaps between consecutive pieces of a stream (one per step when every token completes a piece).</summary>
        public List<double> PieceGapMs { get; set; } = [];

        /// <summary>The scheduler's decode steps of one row while the streams ran.</summary>
        public List<double> StepMs { get; set; } = [];
        public List<double> Loads { get; set; } = [];
    }

    public sealed class Result
    {
        public string Model { get; set; } = "";
        public int Rounds { get; set; }
        public int Threads { get; set; }
        public List<Subject> Subjects { get; set; } = [];
        public StreamingCost Streaming { get; set; } = new();
        public double Minutes { get; set; }
    }

    private static GenerationOptions Options() => new()
    {
        MaxNewTokens = NewTokens, EosTokenIds = [], DoSample = true, Temperature = 0.8f, TopK = 40, Seed = 17, RepetitionPenalty = 1f,
    };

    public static Result Measure(string folder, int rounds, int threads)
    {
        var clock = Stopwatch.StartNew();
        using var model = GptModel.Open(folder, new GptModelOptions { IntraOpThreads = threads });
        using var chatModel = GptModel.Open(ChatCopy(folder), new GptModelOptions { IntraOpThreads = threads });
        using var client = new GptChatClient(chatModel);
        var prompts = Prompts.Make(model, Requests, 16).Select(ids => model.Tokenizer.Decode(ids)).ToArray();
        var options = Options();
        var chatOptions = new ChatOptions
        {
            MaxOutputTokens = NewTokens, Temperature = 0.8f, TopK = 40, Seed = 17,
            RawRepresentationFactory = _ => new GenerationOptions { EosTokenIds = [], RepetitionPenalty = 1f },
        };
        ChatMessage[] Conversation(int i) => [new(ChatRole.User, prompts[i])];

        // References: the static batches' outputs, and each chat request alone (also warms both models up).
        var settings = model.Engine.Resolve(options);
        var prepared = prompts.Select((p, i) => model.Engine.Prompts.FromText(p, i, settings)).ToList();
        var reference = model.Engine.RunOrdered(prepared, settings, 8, continuous: false, CancellationToken.None).Select(r => r.Text).ToArray();
        var chatReference = prompts.Select((_, i) => client.GetResponseAsync(Conversation(i), chatOptions).GetAwaiter().GetResult().Text).ToArray();

        var subjects = new List<(Subject Subject, Func<Subject, string[]> Run)>();
        void Add(string name, string api, int callers, Func<Subject, string[]> run) =>
            subjects.Add((new Subject { Name = name, Api = api, Callers = callers }, run));

        Add("one by one, own loop (before the scheduler)", "loop", 1, s => Timed(s, _ =>
            prompts.Select((_, i) => Latency(s, () => model.Engine.RunOrdered([prepared[i] with { Index = 0 }], settings, 1, continuous: false, CancellationToken.None)[0].Text)).ToArray()));
        Add("static batches of 8, own loop", "loop", 8, s => Timed(s, _ => model.Engine.RunOrdered(prepared, settings, 8, continuous: false, CancellationToken.None).Select(r => r.Text).ToArray()));
        Add("Generate, one list at batch size 8", "Generate", 8, s => Timed(s, _ => model.Generate(prompts, options, 8).Select(r => r.Text).ToArray()));
        foreach (int callers in new[] { 1, 4, 8, 16 })
        {
            int n = callers;
            Add($"Generate, {n} caller(s)", "Generate", n, s => Timed(s, _ => Callers(n, i => Latency(s, () => model.Generate(prompts[i], options).Text))));
            Add($"GptChatClient streaming, {n} caller(s)", "chat", n, s => Timed(s, _ => AsyncCallers(n, i => Chat(s, client, Conversation(i), chatOptions))));
        }

        for (int round = 0; round < rounds; round++)
        {
            int shift = round * subjects.Count / Math.Max(1, rounds);
            foreach (var (subject, run) in subjects.Skip(shift).Concat(subjects.Take(shift)))
            {
                Console.Error.WriteLine($"concurrency: round {round + 1}/{rounds}: {subject.Name}...");
                var scheduler = subject.Api == "chat" ? chatModel.Engine.Scheduler : model.Engine.Scheduler;
                long stepsBefore = scheduler.Steps;
                var (decodesBefore, rowsBefore) = scheduler.Decoded;
                var texts = run(subject);
                if (subject.Api != "loop")
                {
                    subject.SchedulerSteps.Add(scheduler.Steps - stepsBefore);
                    var (decodes, rows) = scheduler.Decoded;
                    subject.RowsPerDecodeStep.Add((double)(rows - rowsBefore) / Math.Max(1, decodes - decodesBefore));
                }
                subject.Identical &= texts.SequenceEqual(subject.Api == "chat" ? chatReference : reference);
                subject.PeakRows = Math.Max(subject.PeakRows, scheduler.PeakRows);
                Console.Error.WriteLine($"concurrency:   {subject.TokensPerSecond[^1]:F0} tokens/s, latency p50 {Stats.Percentile(subject.LatencyMs, 0.5):F1} ms, " +
                    $"p95 {Stats.Percentile(subject.LatencyMs, 0.95):F1} ms, identical {subject.Identical}, load {subject.Loads[^1]:F1}" +
                    (subject.SchedulerSteps.Count > 0 ? $", {subject.SchedulerSteps[^1]} passes, {subject.RowsPerDecodeStep[^1]:F2} rows per decode step" : ""));
            }
            Streaming(model, prompts, options, round);
        }
        var result = new Result { Model = Path.GetFileName(folder), Rounds = rounds, Threads = threads, Subjects = subjects.Select(s => s.Subject).ToList() };
        result.Streaming = s_streaming;
        result.Minutes = clock.Elapsed.TotalMinutes;
        return result;
    }

    private static readonly StreamingCost s_streaming = new();

    /// <summary>One caller, 16 requests each way, alternating: Generate, a stream, Generate of one token.</summary>
    private static void Streaming(GptModel model, string[] prompts, GenerationOptions options, int round)
    {
        s_streaming.Loads.Add(Load.Now());
        var one = options.Clone();
        one.MaxNewTokens = 1;
        for (int i = round * 16 % Requests, n = 0; n < 16; n++, i = (i + 1) % Requests)
        {
            var clock = Stopwatch.StartNew();
            model.Generate(prompts[i], options);
            s_streaming.GenerateMs.Add(clock.Elapsed.TotalMilliseconds);

            clock.Restart();
            double last = double.NaN;
            foreach (var _ in model.GenerateStreamingAsync(prompts[i], options).ToBlockingEnumerable())
            {
                double now = clock.Elapsed.TotalMilliseconds;
                if (double.IsNaN(last)) s_streaming.StreamFirstPieceMs.Add(now);
                else s_streaming.PieceGapMs.Add(now - last);
                last = now;
            }
            s_streaming.StreamMs.Add(clock.Elapsed.TotalMilliseconds);

            clock.Restart();
            model.Generate(prompts[i], one);
            s_streaming.OneTokenGenerateMs.Add(clock.Elapsed.TotalMilliseconds);
        }
        // What one decode step of one row costs, from the engine's own loop, for the gaps to compare with.
        var settings = model.Engine.Resolve(options);
        var timings = new List<(bool Prefill, int Rows, double Milliseconds)>();
        using var loop = model.Engine.CreateLoop(settings, 1, continuous: false, (_, _) => { });
        loop.StepTimings = timings;
        loop.Run(prompts.Take(4).Select((p, i) => model.Engine.Prompts.FromText(p, i, settings)).ToList().GetEnumerator(), CancellationToken.None);
        s_streaming.StepMs.AddRange(timings.Where(t => !t.Prefill).Select(t => t.Milliseconds));
    }

    private static string[] Timed(Subject subject, Func<int, string[]> run)
    {
        subject.Loads.Add(Load.Now());
        var clock = Stopwatch.StartNew();
        var texts = run(0);
        subject.TokensPerSecond.Add(Requests * NewTokens / clock.Elapsed.TotalSeconds);
        return texts;
    }

    private static string Latency(Subject subject, Func<string> request)
    {
        var clock = Stopwatch.StartNew();
        string text = request();
        lock (subject) subject.LatencyMs.Add(clock.Elapsed.TotalMilliseconds);
        return text;
    }

    /// <summary>Caller c sends requests c, c + n, c + 2n, ... one after another, on its own thread.</summary>
    private static string[] Callers(int n, Func<int, string> request)
    {
        var texts = new string[Requests];
        var workers = Enumerable.Range(0, n).Select(c => new Thread(() =>
        {
            for (int i = c; i < Requests; i += n) texts[i] = request(i);
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        return texts;
    }

    private static string[] AsyncCallers(int n, Func<int, Task<string>> request)
    {
        var texts = new string[Requests];
        var callers = Enumerable.Range(0, n).Select(async c =>
        {
            for (int i = c; i < Requests; i += n) texts[i] = await request(i).ConfigureAwait(false);
        }).ToArray();
        Task.WaitAll(callers);
        return texts;
    }

    private static async Task<string> Chat(Subject subject, GptChatClient client, ChatMessage[] conversation, ChatOptions options)
    {
        var clock = Stopwatch.StartNew();
        var text = new System.Text.StringBuilder();
        double first = double.NaN;
        await foreach (var update in client.GetStreamingResponseAsync(conversation, options).ConfigureAwait(false))
        {
            if (double.IsNaN(first) && update.Text.Length > 0) first = clock.Elapsed.TotalMilliseconds;
            text.Append(update.Text);
        }
        lock (subject)
        {
            subject.LatencyMs.Add(clock.Elapsed.TotalMilliseconds);
            if (!double.IsNaN(first)) subject.FirstTokenMs.Add(first);
        }
        return text.ToString();
    }

    /// <summary>A copy of the model folder with a plain chat template (the default model has none), under artifacts/.</summary>
    private static string ChatCopy(string folder)
    {
        string target = Path.Combine(Report.FindRoot(), "artifacts", "models", Path.GetFileName(Path.TrimEndingDirectorySeparator(folder)) + "-chat");
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(folder))
        {
            string copy = Path.Combine(target, Path.GetFileName(file));
            if (!File.Exists(copy) || new FileInfo(copy).Length != new FileInfo(file).Length) File.Copy(file, copy, overwrite: true);
        }
        File.WriteAllText(Path.Combine(target, "chat_template.jinja"),
            "{% for message in messages %}{{ message['content'] }}{% if not loop.last %}\n{% endif %}{% endfor %}");
        return target;
    }
}
