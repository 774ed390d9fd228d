using System.Collections.Concurrent;
using Microsoft.ML;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Models;
using MLNetGpt.Tokenization;

namespace MLNetGpt.Transforms
{
    /// <summary>A stage's model folder (or named encoding), and how it is saved and restored.</summary>
    internal sealed class ModelSource
    {
        private static readonly ConcurrentDictionary<string, Tokenizer> Tokenizers = new(StringComparer.Ordinal);

        private ModelSource(string? folder, string? encoding, ModelStorage storage)
        {
            Folder = folder;
            Encoding = encoding;
            Storage = storage;
        }

        /// <summary>Full path of the model folder (null when only an encoding is named).</summary>
        public string? Folder { get; }

        /// <summary>A named tokenizer encoding (tokenizer-only stages).</summary>
        public string? Encoding { get; }

        public ModelStorage Storage { get; }

        /// <summary>
        /// A stage's folder. With <see cref="ModelStorage.Embed"/>, the files a tokenizer-only stage would embed are
        /// checked against the folder's file policy now, so that saving never meets a link out of the folder halfway
        /// through writing the zip (model stages check theirs when they open the model).
        /// </summary>
        public static ModelSource ForFolder(string folder, ModelStorage storage)
        {
            if (string.IsNullOrWhiteSpace(folder)) throw new ArgumentException("The model folder path is empty.", nameof(folder));
            var full = Path.GetFullPath(folder);
            if (!Directory.Exists(full)) throw new GptModelException($"The model folder '{full}' does not exist.");
            if (storage == ModelStorage.Embed) ModelFiles.For(full).PresentCompanions();
            return new ModelSource(full, null, storage);
        }

        public static ModelSource ForEncoding(string encoding)
        {
            TokenizerFactory.FromEncodingName(encoding, "the tokenizer encoding");
            return new ModelSource(null, encoding, ModelStorage.Reference);
        }

        public override string ToString() => Folder ?? $"encoding {Encoding}";

        /// <summary>The special tokens transformers adds to this source's text (none for a named encoding).</summary>
        public SpecialTokenTemplate GetSpecialTokens() => SpecialTokenRule.For(Folder, GetTokenizer());

        public Tokenizer GetTokenizer() =>
            Tokenizers.GetOrAdd(Folder ?? "encoding:" + Encoding, _ => Folder is not null
                ? TokenizerFactory.Create(Folder, new GptModelOptions()).Tokenizer
                : TokenizerFactory.FromEncodingName(Encoding!, "the tokenizer encoding"));

        // *** Binary format ***
        // int: version (1)
        // string: folder path or "" | string: encoding or ""
        // int: storage
        // when embedded: int file count; per file: string relative path, long length; bytes in stream "ModelFile{i}"

        /// <summary>
        /// Writes the reference, and with <see cref="ModelStorage.Embed"/> the files the model reads: <paramref name="used"/>
        /// (a model stage's <see cref="GptModelInfo.Files"/>), or for a tokenizer-only stage the configuration, tokenizer
        /// and template files present. Never anything else of the folder, and never what a link out of it points at.
        /// </summary>
        public void Save(ModelSaveContext ctx, bool tokenizerOnly, IReadOnlyList<string>? used = null)
        {
            var w = ctx.Writer;
            w.Write(1);
            w.Write(Folder ?? "");
            w.Write(Encoding ?? "");
            w.Write((int)Storage);
            if (Storage != ModelStorage.Embed || Folder is null) return;
            var policy = ModelFiles.For(Folder);
            var files = (tokenizerOnly || used is null ? policy.PresentCompanions() : used).OrderBy(relative => relative, StringComparer.Ordinal).ToList();
            // Resolved (and checked) before the first byte is written, with the lengths of what links lead to.
            var real = files.Select(policy.Require).ToList();
            w.Write(files.Count);
            for (int i = 0; i < files.Count; i++)
            {
                w.Write(files[i]);
                w.Write(new FileInfo(real[i]).Length);
                string path = real[i];
                ctx.SaveBinaryStream($"ModelFile{i}", writer =>
                {
                    using var file = File.OpenRead(path);
                    writer.Flush();
                    file.CopyTo(writer.BaseStream);
                });
            }
        }

        public static ModelSource Load(ModelLoadContext ctx, Action<string>? warn = null)
        {
            var r = ctx.Reader;
            int version = r.ReadInt32();
            if (version != 1) throw new FormatException($"Unknown model reference format {version}.");
            string folder = r.ReadString(), encoding = r.ReadString();
            var storage = (ModelStorage)r.ReadInt32();
            if (storage is not (ModelStorage.Reference or ModelStorage.Embed))
                throw new GptModelException($"The saved pipeline's model reference has storage {(int)storage}; expected {(int)ModelStorage.Reference} (Reference) or {(int)ModelStorage.Embed} (Embed).");
            if (folder.Length == 0) return new ModelSource(null, encoding, storage);
            if (storage != ModelStorage.Embed)
            {
                if (!Directory.Exists(folder))
                    throw new GptModelException($"The saved pipeline refers to the model folder '{folder}', which does not exist (moved or deleted?). " +
                        "Put the model back at that path, or save the pipeline with ModelStorage.Embed so the model travels inside the zip.");
                return new ModelSource(folder, null, storage);
            }
            return new ModelSource(Extract(ctx, r, folder, warn ?? (_ => { })), null, storage);
        }

        /// <summary>
        /// The embedded files' list as the zip states it, checked before anything is allocated or written: a count, and
        /// per file a relative path inside the folder and a length.
        /// </summary>
        private static List<(string Path, long Length)> ReadEntries(BinaryReader r, string originalFolder)
        {
            int count = r.ReadInt32();
            if (count is < 0 or > PrivateCache.MaxFiles)
                throw new GptModelException($"The saved pipeline says its embedded model (of '{originalFolder}') has {count} files; expected 0 to {PrivateCache.MaxFiles:N0} (is the zip damaged?).");
            var entries = new List<(string Path, long Length)>(count);
            var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            for (int i = 0; i < count; i++)
            {
                string path = r.ReadString();
                long length = r.ReadInt64();
                if (path.Length == 0 || Path.IsPathRooted(path) || path.Split('/', '\\').Any(part => part is "" or "." or "..") || path.Contains('\0'))
                    throw new GptModelException($"The saved pipeline holds an embedded file with an invalid path '{path}' (entry {i}); expected a path inside the model folder.");
                if (!seen.Add(path))
                    throw new GptModelException($"The saved pipeline holds the embedded file '{path}' twice (entry {i}).");
                if (length < 0)
                    throw new GptModelException($"The saved pipeline says the embedded file '{path}' is {length} bytes long; expected 0 or more (is the zip damaged?).");
                entries.Add((path.Replace('\\', '/'), length));
            }
            return entries;
        }

        /// <summary>
        /// Streams every embedded file (into what <paramref name="open"/> gives for its index, if anything), checking that each stream holds
        /// exactly the bytes its entry states; returns the content hash.
        /// </summary>
        private static string ForEachFile(ModelLoadContext ctx, List<(string Path, long Length)> entries, string originalFolder,
            Func<int, Stream?> open)
        {
            using var hasher = new PrivateCache.Hasher();
            for (int i = 0; i < entries.Count; i++)
            {
                var (path, length) = entries[i];
                hasher.AppendHeader(path, length);
                long written = -1;
                bool found = ctx.TryLoadBinaryStream($"ModelFile{i}", reader =>
                {
                    using var copy = open(i);
                    written = hasher.AppendContent(reader.BaseStream, copy);
                });
                if (!found)
                    throw new GptModelException($"The saved pipeline is missing the embedded model file '{path}' (of '{originalFolder}').");
                if (written != length)
                    throw new GptModelException($"The saved pipeline's embedded file '{path}' holds {written:N0} bytes, but its entry says {length:N0} (is the zip damaged?).");
            }
            return hasher.Finish();
        }

        private static string Extract(ModelLoadContext ctx, BinaryReader r, string originalFolder, Action<string> warn)
        {
            var entries = ReadEntries(r, originalFolder);
            var names = entries.Select(e => e.Path).ToList();

            // The cache folder is named by the content's hash, so equal content is extracted once; a copy there is
            // checked against the hash before it is used, and one that fails is extracted again.
            string root = PrivateCache.EnsurePrivate(PrivateCache.Root());
            string hash = ForEachFile(ctx, entries, originalFolder, _ => null);
            string target = Path.Combine(root, $"{Path.GetFileName(originalFolder)}-{hash[..24]}");
            if (PrivateCache.Matches(target, names, hash)) return target;
            if (Directory.Exists(target))
                warn($"The extracted copy of the embedded model at '{target}' does not match the saved pipeline (damaged or changed since it was written); extracting it again.");

            string staging = Path.Combine(root, $".staging-{Guid.NewGuid():N}");
            try
            {
                Directory.CreateDirectory(staging);
                string again = ForEachFile(ctx, entries, originalFolder, i =>
                {
                    string path = Path.Combine(staging, entries[i].Path);
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    return File.Create(path);
                });
                if (again != hash)
                    throw new GptModelException($"The saved pipeline's embedded model (of '{originalFolder}') read differently twice; is the zip being written to?");
                if (Directory.Exists(target)) PrivateCache.DeleteIfPresent(target);
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
                throw new GptModelException($"The saved pipeline's embedded model could not be extracted to '{target}': {e.Message} " +
                    $"Set the {DefaultModel.CacheVariable} environment variable to a writable folder.", e);
            }
            finally
            {
                PrivateCache.DeleteIfPresent(staging);
            }
        }
    }
}
