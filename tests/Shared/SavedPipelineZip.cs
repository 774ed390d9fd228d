using System.IO.Compression;

namespace MLNetGpt.Tests.Infrastructure;

/// <summary>Edits the stages' entries of a saved ML.NET pipeline zip, for tests of damaged or older files.</summary>
public static class SavedPipelineZip
{
    /// <summary>
    /// Reads each stage entry (<c>Model.key</c>) of <paramref name="zip"/> into a buffer, lets <paramref name="edit"/>
    /// change it in place, and writes back those it changed (it returns true); returns how many it changed.
    /// </summary>
    public static int EditModelKeys(string zip, Func<byte[], bool> edit)
    {
        int edited = 0;
        using var archive = ZipFile.Open(zip, ZipArchiveMode.Update);
        foreach (var entry in archive.Entries.Where(e => e.FullName.EndsWith("Model.key", StringComparison.Ordinal)).ToList())
        {
            byte[] bytes;
            using (var stream = entry.Open())
            using (var buffer = new MemoryStream())
            {
                stream.CopyTo(buffer);
                bytes = buffer.ToArray();
            }
            if (!edit(bytes)) continue;
            string name = entry.FullName;
            entry.Delete();
            using (var stream = archive.CreateEntry(name).Open()) stream.Write(bytes);
            edited++;
        }
        return edited;
    }
}
