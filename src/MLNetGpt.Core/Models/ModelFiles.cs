namespace MLNetGpt.Models;

/// <summary>
/// The file policy for model folders, in one place: every file the library reads for a model (graphs, external data,
/// configurations, tokenizer files, chat templates) is resolved to its real path, following symbolic links through
/// every component, and a file whose real path leaves the folder is refused, naming the file and its target. A folder
/// from a tarball or a git repository can hold a link to <c>~/.ssh/id_rsa</c>; without this, quantizing or embedding
/// the model would copy the key into a file the user then shares.
/// </summary>
/// <remarks>
/// <para>The one exception is a Hugging Face hub snapshot (<c>.../models--org--name/snapshots/REVISION/</c>), whose
/// files are links into the same cache entry's <c>blobs/</c>: it is recognised and its links into those blobs are
/// allowed. A folder given as a link itself is used where the link leads; its files are then held to that real
/// folder.</para>
/// <para>Reads are capped too (<see cref="MaxConfigurationBytes"/>): a configuration or template file is read whole,
/// and a file of gigabytes would exhaust memory before any check of its content.</para>
/// </remarks>
internal sealed class ModelFiles
{
    /// <summary>The largest JSON configuration, tokenizer configuration or template file read whole.</summary>
    public const long MaxConfigurationBytes = 64L << 20;

    /// <summary>Links followed in one path before it is declared a loop (Linux's own limit is 40).</summary>
    private const int MaxLinkHops = 40;

    /// <summary>
    /// Files, besides the ONNX graphs and their external data, that the library reads from a model folder when they
    /// are present: configurations, tokenizer files and chat templates (with <c>additional_chat_templates/*.jinja</c>).
    /// </summary>
    public static readonly IReadOnlyList<string> CompanionFiles =
    [
        ModelFolder.ConfigFile, ModelFolder.GenerationConfigFile, ModelFolder.GenAIConfigFile,
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model",
        Chat.ChatTemplateFiles.TemplateFile,
    ];

    private static readonly char[] Separators = [Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar];

    private static readonly StringComparison PathComparison = OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    private readonly string? _blobs;

    private ModelFiles(string folder, string realFolder, string? blobs)
    {
        Folder = folder;
        RealFolder = realFolder;
        _blobs = blobs;
    }

    /// <summary>The folder as given (a full path).</summary>
    public string Folder { get; }

    /// <summary>The folder's real path: links in it resolved.</summary>
    public string RealFolder { get; }

    /// <summary>Whether the folder is a Hugging Face hub snapshot whose links into the cache's blobs are allowed.</summary>
    public bool IsHubSnapshot => _blobs is not null;

    /// <summary>The policy for <paramref name="folder"/>.</summary>
    /// <exception cref="GptModelException">The folder's own path holds a link loop.</exception>
    public static ModelFiles For(string folder)
    {
        string full = Path.GetFullPath(folder);
        string real = RealPath(full, full);
        return new ModelFiles(full, real, HubBlobs(real));
    }

    /// <summary>
    /// The real path of <paramref name="relative"/> (a path inside the folder, '/' or '\' separated), or null when no
    /// such file exists.
    /// </summary>
    /// <exception cref="GptModelException">The path, or a link on its way, leads outside the folder (and outside the hub's blobs for a snapshot).</exception>
    public string? Find(string relative)
    {
        string real = Resolve(relative);
        return File.Exists(real) ? real : null;
    }

    /// <summary>Checks each of <paramref name="relatives"/> that exists against the policy (for readers that open files by path).</summary>
    /// <exception cref="GptModelException">One of them leads outside the folder.</exception>
    public void RefuseLinksOut(IEnumerable<string> relatives)
    {
        foreach (var relative in relatives) Find(relative);
    }

    /// <summary>Whether the file exists (inside the folder, by the policy).</summary>
    public bool Exists(string relative) => Find(relative) is not null;

    /// <summary>The real path of <paramref name="relative"/>, which must be a file of the folder.</summary>
    /// <exception cref="GptModelException">The file is missing or leads outside the folder.</exception>
    public string Require(string relative) =>
        Find(relative) ?? throw new GptModelException($"The model folder '{Folder}' has no file '{relative}'.");

    /// <summary>
    /// The real path <paramref name="relative"/> leads to (whether or not a file is there), checked against the policy.
    /// </summary>
    /// <exception cref="GptModelException">It leads outside the folder.</exception>
    public string Resolve(string relative)
    {
        // A rooted path or a '..' step would leave the folder before any link is looked at; refused as written, so
        // that the path checked here is the path every reader opens.
        if (Path.IsPathRooted(relative) || relative.Split(Separators).Contains(".."))
            throw new GptModelException($"'{relative}' names a file outside the model folder '{Folder}'; a model's files must be inside its folder.");
        // Resolved from the real folder, so that a folder given through a link is judged where it really is.
        string real = RealPath(Path.Combine(RealFolder, relative), Path.Combine(Folder, relative));
        if (IsInside(real, RealFolder)) return real;
        if (_blobs is not null && IsInside(real, _blobs)) return real;
        throw new GptModelException(
            $"'{Path.Combine(Folder, relative)}' is a link to '{real}', outside the model folder '{Folder}'; a model's files must be inside " +
            "its folder (or, in a Hugging Face hub snapshot, links into the cache's blobs). Copy the file into the folder if it is meant to be there.");
    }

    /// <summary>The length of a file of the folder: the length of what a link leads to, never of the link itself.</summary>
    public long Length(string relative) => new FileInfo(Require(relative)).Length;

    /// <summary>Reads a configuration or template file of the folder whole, refusing one beyond <see cref="MaxConfigurationBytes"/>.</summary>
    /// <exception cref="GptModelException">The file is missing, leads outside the folder, or is too large.</exception>
    public byte[] ReadSmallFile(string relative) => ReadSmallFile(Require(relative), Path.Combine(Folder, relative));

    /// <summary>Reads a file already resolved (<paramref name="real"/>) whole; <paramref name="shown"/> names it in errors.</summary>
    public static byte[] ReadSmallFile(string real, string shown)
    {
        using var stream = new FileStream(real, FileMode.Open, FileAccess.Read, FileShare.Read);
        long length = stream.Length;
        if (length > MaxConfigurationBytes)
            throw new GptModelException($"{shown} is {length:N0} bytes long; a configuration, tokenizer configuration or template file may hold at most {MaxConfigurationBytes:N0}.");
        var bytes = new byte[length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>The text of a configuration or template file of the folder (UTF-8, a BOM dropped).</summary>
    public string ReadSmallText(string relative) => Decode(ReadSmallFile(relative));

    /// <summary>The text of bytes read by <see cref="ReadSmallFile(string, string)"/>.</summary>
    public static string Decode(byte[] bytes)
    {
        using var reader = new StreamReader(new MemoryStream(bytes), System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd();
    }

    /// <summary>The companion files (<see cref="CompanionFiles"/> and additional chat templates) present in the folder, relative, '/'-separated.</summary>
    public IReadOnlyList<string> PresentCompanions()
    {
        var present = CompanionFiles.Where(Exists).ToList();
        string additional = Path.Combine(Folder, Chat.ChatTemplateFiles.AdditionalFolder);
        if (Directory.Exists(additional))
            present.AddRange(Directory.GetFiles(additional, "*.jinja").Order(StringComparer.Ordinal)
                .Select(f => Chat.ChatTemplateFiles.AdditionalFolder + "/" + Path.GetFileName(f))
                .Where(Exists));
        return present;
    }

    /// <summary>Whether <paramref name="path"/> is <paramref name="folder"/> or inside it (both full paths).</summary>
    public static bool IsInside(string path, string folder)
    {
        string a = Path.TrimEndingDirectorySeparator(path), b = Path.TrimEndingDirectorySeparator(folder);
        return a.Equals(b, PathComparison) || a.StartsWith(b + Path.DirectorySeparatorChar, PathComparison);
    }

    /// <summary>
    /// A path with every symbolic link on it resolved, component by component (a link's target may itself pass
    /// through links). A component that does not exist ends the resolution: the rest is kept as written.
    /// </summary>
    /// <exception cref="GptModelException">More than 40 links on the way (a loop).</exception>
    public static string RealPath(string path, string shown)
    {
        string full = Path.GetFullPath(path);
        string root = Path.GetPathRoot(full)!;
        var pending = new Stack<string>(Enumerable.Reverse(full[root.Length..].Split(Separators, StringSplitOptions.RemoveEmptyEntries)));
        string current = root;
        int hops = 0;
        while (pending.Count > 0)
        {
            string part = pending.Pop();
            if (part == ".") continue;
            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? current;
                continue;
            }
            string next = Path.Combine(current, part);
            // LinkTarget reads the link itself (a dangling link has one too); null for anything else, or nothing.
            string? target = new FileInfo(next).LinkTarget;
            if (target is null)
            {
                if (!File.Exists(next) && !Directory.Exists(next))
                {
                    // Not there: nothing more to resolve; keep the rest as written.
                    var rest = new List<string> { next };
                    while (pending.Count > 0) rest.Add(pending.Pop());
                    return Path.GetFullPath(Path.Combine([.. rest]));
                }
                current = next;
                continue;
            }
            if (++hops > MaxLinkHops)
                throw new GptModelException($"'{shown}' passes through more than {MaxLinkHops} symbolic links (a link loop?); a model's files must be real files in its folder.");
            // The target's own components are resolved one by one from where the link is, '..' included: the
            // system takes a '..' after a link from the link's target, which no textual normalisation would do.
            if (Path.IsPathRooted(target))
            {
                current = Path.GetPathRoot(target)!;
                target = target[current.Length..];
            }
            foreach (var piece in Enumerable.Reverse(target.Split(Separators, StringSplitOptions.RemoveEmptyEntries)))
                pending.Push(piece);
        }
        return current;
    }

    /// <summary>
    /// For a Hugging Face hub snapshot (<c>CACHE/models--org--name/snapshots/REVISION</c> with a <c>blobs</c> folder
    /// beside <c>snapshots</c>), or a folder inside one (its <c>onnx/</c>), the real path of that blobs folder; null for
    /// any other folder.
    /// </summary>
    private static string? HubBlobs(string realFolder)
    {
        string? revision = Path.TrimEndingDirectorySeparator(realFolder);
        for (int level = 0; level < 8 && revision is not null; level++, revision = Path.GetDirectoryName(revision))
        {
            var snapshots = Path.GetDirectoryName(revision);
            if (snapshots is null || !Path.GetFileName(snapshots).Equals("snapshots", StringComparison.Ordinal)) continue;
            var entry = Path.GetDirectoryName(snapshots);
            if (entry is null) return null;
            string blobs = Path.Combine(entry, "blobs");
            if (!Directory.Exists(blobs)) return null;
            string realBlobs = RealPath(blobs, blobs);
            // The blobs must be the cache entry's own folder, not a link to somewhere else.
            return IsInside(realBlobs, RealPath(entry, entry)) ? realBlobs : null;
        }
        return null;
    }
}
