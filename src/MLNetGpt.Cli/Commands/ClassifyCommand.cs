using System.CommandLine;
using MLNetGpt.Cli.Batch;

namespace MLNetGpt.Cli.Commands;

/// <summary>
/// <c>mlnetgpt classify INPUT -o OUTPUT --labels A,B</c>: zero-shot classification of every row through
/// the library's ClassifyText stage (each label's likelihood as the continuation of the row's prompt).
/// </summary>
internal static class ClassifyCommand
{
    public static Command Build()
    {
        var command = new Command("classify", "Add the most likely of a set of labels, as the continuation of each row's prompt, to every row of a CSV file.");
        var input = new Argument<string>("INPUT") { Description = "Input CSV file (RFC 4180, UTF-8, first row = column names)." };
        var output = new Option<string>("--output", "-o") { Description = "Output file.", Required = true, HelpName = "FILE" };
        var labels = new Option<string?>("--labels")
        {
            Description = "The labels, separated by commas and used as given: a leading space usually matters (\" yes, no\" scores \" yes\" and \" no\", " +
                "the way the words follow a prompt in running text).",
            HelpName = "A,B,C",
        };
        var labelsFile = new Option<string?>("--labels-file") { Description = "As --labels, one label per line (UTF-8), for labels that hold commas.", HelpName = "FILE" };
        var textColumn = new Option<string?>("--text-column") { Description = "Column holding the prompt to classify. Default: 'text'.", HelpName = "NAME" };
        var template = new Option<string?>("--template")
        {
            Description = "Prompt template with {column} placeholders, e.g. \"Review: {review}\\nSentiment:\" (as generate's --template).",
            HelpName = "TEXT",
        };
        var lengthNormalized = new Option<bool>("--length-normalized") { Description = "Rank labels by their mean log-likelihood per token, so labels of more tokens are not penalised." };
        var probabilities = new Option<bool>("--probabilities") { Description = "Also add a p_<label> column per label (the label without edge spaces) with its probability." };
        var errorColumn = CommandLine.ErrorColumnOption();
        var common = new CommandLine.CommonFlags();
        foreach (var option in new Option[] { output, labels, labelsFile, textColumn, template, lengthNormalized, probabilities, errorColumn })
            command.Add(option);
        command.Add(input);
        common.AddTo(command);
        command.SetAction(p => Program.Guard(() =>
        {
            if (p.GetValue(textColumn) is not null && p.GetValue(template) is not null)
                throw new UsageException("give --text-column or --template, not both.");
            string[] labelSet = (p.GetValue(labels), p.GetValue(labelsFile)) switch
            {
                ({ } list, null) => TextList.FromCommaList(list, "--labels", "label"),
                (null, { } file) => TextList.FromFile(file, "--labels-file", "label"),
                (null, null) => throw new UsageException("give the labels with --labels A,B,... or --labels-file FILE."),
                _ => throw new UsageException("give --labels or --labels-file, not both."),
            };
            if (labelSet.Length < 2)
                throw new UsageException($"{(p.GetValue(labels) is null ? "--labels-file" : "--labels")}: give at least two labels; there is one ('{labelSet[0]}').");
            return BatchJob.Classify(common.Read(p, p.GetValue(input)!, p.GetValue(output)!, new GenerationOptions()) with
            {
                Labels = labelSet,
                TextColumn = p.GetValue(textColumn),
                Template = p.GetValue(template),
                LengthNormalized = p.GetValue(lengthNormalized),
                Probabilities = p.GetValue(probabilities),
                ErrorColumn = p.GetValue(errorColumn),
            });
        }));
        return command;
    }
}
