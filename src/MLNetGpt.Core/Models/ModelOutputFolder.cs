namespace MLNetGpt.Models;

/// <summary>
/// A new model folder written from another (quantizing, fine-tuning): the output must be new or empty and outside the
/// input; a failure leaves no half-written folder that looks usable; and besides the ONNX files the writer makes, only
/// the files a model reads (<see cref="ModelFiles.PresentCompanions"/>) and its model card are copied, each through
/// the input's file policy, so whatever else the folder holds, and anything a link in it points at, stays behind.
/// </summary>
internal static class ModelOutputFolder
{
    /// <summary>The model card (a Hugging Face folder's README.md), which writers extend with what they did.</summary>
    public const string ModelCard = "README.md";

    /// <summary>
    /// Checks <paramref name="output"/> (full paths both), creates it, and runs <paramref name="write"/>; if that throws,
    /// empties the folder again (or removes it, where it did not exist before) and rethrows. <paramref name="inputName"/>
    /// names the input in the refusal ("input folder", "model folder").
    /// </summary>
    /// <exception cref="IOException">The output is the input or inside it, or is not empty.</exception>
    public static T Write<T>(string input, string inputName, string output, Func<T> write)
    {
        if (ModelFiles.IsInside(output, input))
            throw new IOException($"The output folder '{output}' is the {inputName} or inside it; choose a folder outside '{input}'.");
        bool existed = Directory.Exists(output);
        if (existed && Directory.EnumerateFileSystemEntries(output).Any())
            throw new IOException($"The output folder '{output}' is not empty; choose a new or empty folder.");
        Directory.CreateDirectory(output);
        try
        {
            return write();
        }
        catch
        {
            if (existed)
            {
                foreach (var entry in new DirectoryInfo(output).EnumerateFileSystemInfos())
                {
                    if (entry is DirectoryInfo d) d.Delete(recursive: true);
                    else entry.Delete();
                }
            }
            else
            {
                Directory.Delete(output, recursive: true);
            }
            throw;
        }
    }

    /// <summary>
    /// Copies the companion files present in the input and its model card, except those in <paramref name="skip"/>
    /// ('/'-separated relative paths), each resolved through <paramref name="policy"/>; returns what was copied.
    /// </summary>
    public static List<string> CopyCompanions(ModelFiles policy, string output, IReadOnlySet<string> skip)
    {
        var copied = new List<string>();
        var files = policy.PresentCompanions().ToList();
        if (policy.Exists(ModelCard)) files.Add(ModelCard);
        foreach (var relative in files)
        {
            if (skip.Contains(relative)) continue;
            string target = Path.Combine(output, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(policy.Require(relative), target);
            copied.Add(relative);
        }
        return copied;
    }
}
