using System.CommandLine;
using MLNetGpt.Cli.Batch;

namespace MLNetGpt.Cli.Commands;

/// <summary><c>mlnetgpt merge OUTPUT SHARD...</c>: joins the outputs of a job run with <c>--shard K/N</c>.</summary>
internal static class MergeCommand
{
    public static Command Build()
    {
        var command = new Command("merge", "Join the outputs of a sharded job (generate, score or classify with --shard K/N) into the file the unsharded job writes.");
        var output = new Argument<string>("OUTPUT") { Description = "The merged file to write." };
        var shards = new Argument<string[]>("SHARD") { Description = "Every shard's output, in any order (each with its SHARD.job.json beside it).", Arity = ArgumentArity.OneOrMore };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "No summary line." };
        command.Add(output);
        command.Add(shards);
        command.Add(quiet);
        command.SetAction(p => Program.Guard(() => ShardMerge.Run(p.GetValue(output)!, p.GetValue(shards)!, p.GetValue(quiet))));
        return command;
    }
}
