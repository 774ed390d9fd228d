using MLNetGpt.Tests.Training;
using MLNetGpt.Training;

namespace MLNetGpt.Tests.Infrastructure;

/// <summary>What the fine-tuning tests of every project share: a small model, texts, the exact bigram graph's factory, small options.</summary>
internal static class FineTuneKit
{
    internal static readonly string Model = Fixtures.Folder("tiny-gpt2-a");

    internal static readonly string[] Texts =
    [
        "In the beginning God created the heaven and the earth.",
        "And the earth was without form, and void; and darkness was upon the face of the deep.",
        "And God said, Let there be light: and there was light.",
        "",
        "Permission is hereby granted, free of charge, to any person obtaining a copy of this software.",
        "THE SOFTWARE IS PROVIDED AS IS, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.",
    ];

    internal static readonly string[] Held = ["And God saw the light, that it was good.", "Redistribution and use in source and binary forms are permitted."];

    /// <summary>The exact bigram graph over GPT-2's ids, writing a copy of the model folder it was asked for.</summary>
    internal static Func<TrainingGraphRequest, ITrainingGraph> Bigram(List<TrainingGraphRequest>? requests = null, List<BigramGraph>? graphs = null, int maxSequenceLength = 128) =>
        request =>
        {
            requests?.Add(request);
            var graph = new BigramGraph(50257, 2, maxSequenceLength, seed: 3, template: request.ModelFolder);
            graphs?.Add(graph);
            return graph;
        };

    internal static FineTuneOptions Small(Action<FineTuneOptions>? change = null)
    {
        var options = new FineTuneOptions { BatchSize = 2, SequenceLength = 16, MaxSteps = 3, LearningRate = 0.05, Log = _ => { } };
        change?.Invoke(options);
        return options;
    }

    /// <summary>Collects reports synchronously, in order (<see cref="Progress{T}"/> posts them to the thread pool).</summary>
    internal sealed class Collect(List<FineTuneProgress> list) : IProgress<FineTuneProgress>
    {
        public void Report(FineTuneProgress value) => list.Add(value);
    }
}
