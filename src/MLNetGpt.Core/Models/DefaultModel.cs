using System.Reflection;
using System.Runtime.CompilerServices;
using MLNetGpt.Models.Kjv;

namespace MLNetGpt.Models;

/// <summary>
/// The default model folder: the files that MLNetGpt.Models.Kjv carries as resources, extracted once
/// to <c>ROOT/mlnetgpt-kjv-HASH</c>, where HASH is taken from the resources' names and bytes. A new
/// model version therefore gets a new folder, and every process of every app shares one copy.
/// </summary>
internal static class DefaultModel
{
    public const string PackageId = "MLNetGpt.Models.Kjv";
    public const string CacheVariable = "MLNETGPT_CACHE";
    public const string FolderPrefix = "mlnetgpt-kjv-";

    private static readonly object s_gate = new();
    private static string? s_folder;

    /// <summary>The extracted folder under <see cref="CacheRoot"/>, extracting it on the first call of the process.</summary>
    public static string Folder
    {
        get
        {
            // Not Lazy<T>: it would cache a failure (say, a full disk) for the life of the process.
            lock (s_gate)
                return s_folder ??= Extract(CacheRoot(), ResourceAssembly());
        }
    }

    /// <summary><c>MLNETGPT_CACHE</c> when set, else <c>MLNetGpt/models</c> under the local application data folder (the temporary folder where there is none).</summary>
    public static string CacheRoot()
    {
        var configured = Environment.GetEnvironmentVariable(CacheVariable);
        if (!string.IsNullOrWhiteSpace(configured)) return Path.GetFullPath(configured);
        var local = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify);
        return Path.Combine(string.IsNullOrEmpty(local) ? Path.GetTempPath() : local, "MLNetGpt", "models");
    }

    /// <summary>
    /// Returns <c>ROOT/mlnetgpt-kjv-HASH</c> with the model files of <paramref name="source"/>, writing them only when
    /// that folder is absent, damaged or tampered with: its files are checked against the resources' content hash
    /// before use (a folder that fails is written again, with a warning). <paramref name="root"/> is made private to
    /// the user (mode 0700). The files are written to a staging folder that is renamed into place and removed on any
    /// failure, so no process ever sees a half-written model and nothing is left behind.
    /// </summary>
    /// <exception cref="GptModelException">The assembly carries no model files, or the folder cannot be written.</exception>
    public static string Extract(string root, Assembly? source, Action<string>? warn = null)
    {
        warn ??= message => System.Diagnostics.Trace.WriteLine(message, "MLNetGpt");
        var files = Resources(source);
        string hash = ContentHash(source!, files);
        string target = Path.Combine(root, FolderPrefix + hash[..16]);
        var names = files.Select(f => f.File).ToList();
        string staging = Path.Combine(root, $".{FolderPrefix}{Guid.NewGuid():N}.partial");
        try
        {
            PrivateCache.EnsurePrivate(root);
            if (PrivateCache.Matches(target, names, hash)) return target;
            if (Directory.Exists(target))
                warn($"The default model's copy at '{target}' does not match the model's files (damaged or changed since it was written); writing it again.");
            Directory.CreateDirectory(staging);
            foreach (var (resource, file) in files)
            {
                using var input = source!.GetManifestResourceStream(resource)!;
                using var output = File.Create(Path.Combine(staging, file));
                input.CopyTo(output);
            }
            if (Directory.Exists(target) && !PrivateCache.Matches(target, names, hash)) PrivateCache.DeleteIfPresent(target);
            try
            {
                Directory.Move(staging, target);
            }
            catch (IOException) when (PrivateCache.Matches(target, names, hash))
            {
                // Another process extracted the same content first: its copy is as good as ours.
            }
            return target;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new GptModelException(
                $"The default model could not be extracted to '{target}': {e.Message} Set the {CacheVariable} environment variable to a writable folder.", e);
        }
        finally
        {
            PrivateCache.DeleteIfPresent(staging);
        }
    }

    /// <summary>MLNetGpt.Models.Kjv's assembly, or null where the app lacks it (its type is resolved only when this runs).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static Assembly? ResourceAssembly()
    {
        try
        {
            return typeof(KjvModelData).Assembly;
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    private static List<(string Resource, string File)> Resources(Assembly? source)
    {
        var files = source?.GetManifestResourceNames()
            .Where(name => name.StartsWith(KjvModelData.ResourcePrefix, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .Select(name => (name, name[KjvModelData.ResourcePrefix.Length..]))
            .ToList();
        if (files is null || files.Count == 0)
            throw new GptModelException(
                $"The default model's files come with the package {PackageId}, but {(source is null ? "its assembly is not in this app" : $"the assembly '{source.GetName().Name}' carries none")}: " +
                $"add the package (dotnet add package {PackageId}) or open a model folder of your own with GptModel.Open(folder).");
        return files;
    }

    /// <summary>The SHA-256 of the resources' names, lengths and bytes, as <see cref="PrivateCache.Hasher"/> computes it for a folder.</summary>
    private static string ContentHash(Assembly source, List<(string Resource, string File)> files)
    {
        using var hasher = new PrivateCache.Hasher();
        foreach (var (resource, file) in files)
        {
            using var stream = source.GetManifestResourceStream(resource)!;
            hasher.AppendHeader(file, stream.Length);
            hasher.AppendContent(stream);
        }
        return hasher.Finish();
    }
}
