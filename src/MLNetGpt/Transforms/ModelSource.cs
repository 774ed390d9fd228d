using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.ML;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Tokenization;

namespace MLNetGpt.Transforms
{
    /// <summary>A stage's model folder (or named encoding), and how it is saved and restored.</summary>
    internal sealed class ModelSource
    {
        private static readonly ConcurrentDictionary<string, Tokenizer> Tokenizers = new(StringComparer.Ordinal);
        private static readonly string[] TokenizerFiles =
            ["tokenizer.json", "vocab.json", "merges.txt", "tokenizer.model", "tokenizer_config.json", "config.json", "generation_config.json", "genai_config.json", "special_tokens_map.json",
             Chat.ChatTemplateFiles.TemplateFile];

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

        public static ModelSource ForFolder(string folder, ModelStorage storage)
        {
            if (string.IsNullOrWhiteSpace(folder)) throw new ArgumentException("The model folder path is empty.", nameof(folder));
            var full = Path.GetFullPath(folder);
            if (!Directory.Exists(full)) throw new GptModelException($"The model folder '{full}' does not exist.");
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
        public void Save(ModelSaveContext ctx, bool tokenizerOnly)
        {
            var w = ctx.Writer;
            w.Write(1);
            w.Write(Folder ?? "");
            w.Write(Encoding ?? "");
            w.Write((int)Storage);
            if (Storage != ModelStorage.Embed || Folder is null) return;
            var files = Directory.GetFiles(Folder, "*", SearchOption.AllDirectories)
                .Select(path => Path.GetRelativePath(Folder, path))
                .Where(relative => !tokenizerOnly || TokenizerFiles.Contains(relative, StringComparer.OrdinalIgnoreCase)
                    || relative.StartsWith(Chat.ChatTemplateFiles.AdditionalFolder + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                .OrderBy(relative => relative, StringComparer.Ordinal)
                .ToList();
            w.Write(files.Count);
            for (int i = 0; i < files.Count; i++)
            {
                var path = Path.Combine(Folder, files[i]);
                w.Write(files[i].Replace('\\', '/'));
                w.Write(new FileInfo(path).Length);
                ctx.SaveBinaryStream($"ModelFile{i}", writer =>
                {
                    using var file = File.OpenRead(path);
                    writer.Flush();
                    file.CopyTo(writer.BaseStream);
                });
            }
        }

        public static ModelSource Load(ModelLoadContext ctx)
        {
            var r = ctx.Reader;
            int version = r.ReadInt32();
            if (version != 1) throw new FormatException($"Unknown model reference format {version}.");
            string folder = r.ReadString(), encoding = r.ReadString();
            var storage = (ModelStorage)r.ReadInt32();
            if (folder.Length == 0) return new ModelSource(null, encoding, storage);
            if (storage != ModelStorage.Embed)
            {
                if (!Directory.Exists(folder))
                    throw new GptModelException($"The saved pipeline refers to the model folder '{folder}', which does not exist (moved or deleted?). " +
                        "Put the model back at that path, or save the pipeline with ModelStorage.Embed so the model travels inside the zip.");
                return new ModelSource(folder, null, storage);
            }
            return new ModelSource(Extract(ctx, r, folder), null, storage);
        }

        private static string Extract(ModelLoadContext ctx, BinaryReader r, string originalFolder)
        {
            int count = r.ReadInt32();
            var entries = new List<(string Path, long Length)>(count);
            for (int i = 0; i < count; i++) entries.Add((r.ReadString(), r.ReadInt64()));

            // Files are hashed while they are written to a staging folder; the cache folder is named by
            // the hash, so equal content is extracted once and reused.
            string root = Path.Combine(Path.GetTempPath(), "mlnetgpt-models");
            string staging = Path.Combine(root, $"staging-{Guid.NewGuid():N}");
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            for (int i = 0; i < count; i++)
            {
                string path = Path.GetFullPath(Path.Combine(staging, entries[i].Path));
                if (!path.StartsWith(Path.GetFullPath(staging) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                    throw new GptModelException($"The saved pipeline holds an embedded file with an invalid path '{entries[i].Path}'.");
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                hash.AppendData(System.Text.Encoding.UTF8.GetBytes(entries[i].Path));
                bool found = ctx.TryLoadBinaryStream($"ModelFile{i}", reader =>
                {
                    using var file = File.Create(path);
                    var buffer = new byte[1 << 16];
                    int read;
                    while ((read = reader.BaseStream.Read(buffer, 0, buffer.Length)) > 0)
                    {
                        hash.AppendData(buffer, 0, read);
                        file.Write(buffer, 0, read);
                    }
                });
                if (!found)
                    throw new GptModelException($"The saved pipeline is missing the embedded model file '{entries[i].Path}' (of '{originalFolder}').");
            }
            string key = Convert.ToHexString(hash.GetHashAndReset())[..24].ToLowerInvariant();
            string target = Path.Combine(root, $"{Path.GetFileName(originalFolder)}-{key}");
            string complete = Path.Combine(target, ".complete");
            if (File.Exists(complete))
            {
                Directory.Delete(staging, recursive: true);
                return target;
            }
            File.WriteAllText(Path.Combine(staging, ".complete"), originalFolder);
            try
            {
                if (Directory.Exists(target)) Directory.Delete(target, recursive: true);   // an incomplete earlier attempt
                Directory.Move(staging, target);
            }
            catch (IOException) when (File.Exists(complete))
            {
                Directory.Delete(staging, recursive: true);   // another process extracted the same content first
            }
            return target;
        }
    }
}
