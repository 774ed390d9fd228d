using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace MLNetGpt.Models;

/// <summary>
/// The per-user folder where models are extracted (the default model, models embedded in saved pipelines): the local
/// application data folder's <c>MLNetGpt/models</c>, or <c>MLNETGPT_CACHE</c>. It is private (mode 0700 on Unix), every
/// copy in it is named by the hash of its content and checked against that hash before use, and copies are written
/// through a staging folder that is removed on any failure, so a half-written or tampered copy is never loaded.
/// </summary>
internal static class PrivateCache
{
    /// <summary>Files a content list may name (a saved pipeline's count is checked against it before anything is allocated).</summary>
    public const int MaxFiles = 100_000;

    /// <summary>A root for the current flow of execution only (tests give each case its own, without touching the process's environment).</summary>
    internal static readonly AsyncLocal<string?> RootOverride = new();

    /// <summary>Where extracted models go: <see cref="RootOverride"/>, else <see cref="DefaultModel.CacheRoot"/>.</summary>
    public static string Root() => RootOverride.Value ?? DefaultModel.CacheRoot();

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode OthersAnything = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>
    /// Creates <paramref name="root"/> readable and writable by the user alone, or makes an existing one so; another
    /// user's copy of a model can then never be put in its place.
    /// </summary>
    /// <exception cref="IOException">The folder cannot be created.</exception>
    /// <exception cref="UnauthorizedAccessException">The folder belongs to someone else and cannot be made private.</exception>
    public static string EnsurePrivate(string root)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(root);   // under %LOCALAPPDATA%, which is the user's own
            return root;
        }
        if (!Directory.Exists(root)) Directory.CreateDirectory(root, OwnerOnly);
        if ((File.GetUnixFileMode(root) & OthersAnything) != 0) File.SetUnixFileMode(root, OwnerOnly);
        return root;
    }

    /// <summary>
    /// The content hash of files given in order: per file its name, a zero byte, its length (64 bits, little-endian)
    /// and its bytes. The same for files in a folder and entries in a zip, so the two can be compared.
    /// </summary>
    public sealed class Hasher : IDisposable
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public void AppendHeader(string name, long length)
        {
            _hash.AppendData(Encoding.UTF8.GetBytes(name + "\0"));
            Span<byte> bytes = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(bytes, length);
            _hash.AppendData(bytes);
        }

        /// <summary>Appends a stream's bytes, copying them to <paramref name="copy"/> when given; returns how many there were.</summary>
        public long AppendContent(Stream content, Stream? copy = null)
        {
            var buffer = new byte[1 << 16];
            long total = 0;
            for (int read; (read = content.Read(buffer, 0, buffer.Length)) > 0;)
            {
                _hash.AppendData(buffer, 0, read);
                copy?.Write(buffer, 0, read);
                total += read;
            }
            return total;
        }

        /// <summary>The hash as lower-case hexadecimal.</summary>
        public string Finish() => Convert.ToHexString(_hash.GetHashAndReset()).ToLowerInvariant();

        public void Dispose() => _hash.Dispose();
    }

    /// <summary>
    /// Whether <paramref name="folder"/> holds exactly <paramref name="files"/> (relative, '/'-separated) with the content
    /// whose hash is <paramref name="expected"/>, and no other file the library would read (a planted chat template or
    /// graph). A file left there that nothing reads (a note) does not count.
    /// </summary>
    public static bool Matches(string folder, IReadOnlyList<string> files, string expected)
    {
        try
        {
            using var hasher = new Hasher();
            foreach (var name in files)
            {
                var path = Path.Combine(folder, name);
                if (new FileInfo(path).LinkTarget is not null) return false;    // a copy holds files, never links
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
                hasher.AppendHeader(name, stream.Length);
                hasher.AppendContent(stream);
            }
            if (!hasher.Finish().Equals(expected, StringComparison.Ordinal)) return false;
            var listed = new HashSet<string>(files, StringComparer.Ordinal);
            foreach (var path in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
            {
                string relative = Path.GetRelativePath(folder, path).Replace('\\', '/');
                if (!listed.Contains(relative) && IsRead(relative)) return false;
            }
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Whether the library would read a file of this name in a model folder.</summary>
    private static bool IsRead(string relative) =>
        ModelFiles.CompanionFiles.Contains(relative)
        || relative.StartsWith(Chat.ChatTemplateFiles.AdditionalFolder + "/", StringComparison.Ordinal)
        || relative.Contains(".onnx", StringComparison.OrdinalIgnoreCase)
        || relative.StartsWith(OnnxCommunityVariants.Folder + "/", StringComparison.Ordinal);

    /// <summary>Removes a folder if it is there (another process may remove it first).</summary>
    public static void DeleteIfPresent(string folder)
    {
        try
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // Removed by another process meanwhile.
        }
    }
}
