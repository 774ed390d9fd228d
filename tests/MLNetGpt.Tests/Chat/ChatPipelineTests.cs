using Microsoft.Extensions.AI;
using Microsoft.ML;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Chat;

/// <summary>
/// Chat prompts in ML.NET pipelines: rows rendered through the model's template (references: the fixture's
/// Hugging Face token ids, and GptModel on the same ids), persisted in the stage settings and restored by
/// <c>mlContext.Model.Load</c>, with referenced and embedded model folders.
/// </summary>
public sealed class ChatPipelineTests
{
    public sealed class Row
    {
        public string Question { get; set; } = "";
    }

    public sealed class Answer
    {
        public string Question { get; set; } = "";
        public string Reply { get; set; } = "";
        public int[] Reply_PromptTokens { get; set; } = [];
        public string Finish { get; set; } = "";
    }

    private static readonly Row[] Rows = [new() { Question = "What is the capital of France?" }, new() { Question = "Tell me a joke." }];

    private static GenerateTextOptions Options(string folder, string? system = null, ModelStorage storage = ModelStorage.Reference) => new()
    {
        OutputColumnName = "Reply", InputColumnName = "Question", ModelFolder = folder, Chat = true, SystemPrompt = system,
        FinishReasonColumnName = "Finish", Storage = storage,
        Generation = new GenerationOptions { MaxNewTokens = 12, DoSample = true, Seed = 5 },
    };

    private static List<Answer> Run(MLContext ml, ITransformer model) =>
        ml.Data.CreateEnumerable<Answer>(model.Transform(ml.Data.LoadFromEnumerable(Rows)), reuseRowObject: false).ToList();

    [Fact]
    public void A_chat_stage_tokenizes_each_row_as_its_rendered_conversation_as_a_Hugging_Face_tokenizer_does()
    {
        var ml = new MLContext(seed: 1);
        using var model = (IDisposable)ml.Transforms.Text.GenerateText(Options(HfConversation.ChatFixtureFolder)).Fit(ml.Data.LoadFromEnumerable(Rows));
        var answers = Run(ml, (ITransformer)model);
        var golden = HfConversation.Golden().Single(c => c.Name == "single-user");
        Assert.Equal(golden.Ids, answers[0].Reply_PromptTokens);
    }

    [Fact]
    public void A_chat_stage_replies_what_the_model_generates_from_the_rendered_prompt_with_the_system_prompt_first()
    {
        const string system = "You are a helpful assistant.";
        var ml = new MLContext(seed: 1);
        using var fitted = (IDisposable)ml.Transforms.Text.GenerateText(Options(HfConversation.ChatFixtureFolder, system)).Fit(ml.Data.LoadFromEnumerable(Rows));
        var answers = Run(ml, (ITransformer)fitted);
        using var gpt = GptModel.Open(HfConversation.ChatFixtureFolder);
        for (int i = 0; i < Rows.Length; i++)
        {
            var text = gpt.ChatTemplate!.Render([new ChatMessage(ChatRole.System, system), new ChatMessage(ChatRole.User, Rows[i].Question)]);
            var ids = gpt.Tokenizer.EncodeToIds(text).ToArray();
            Assert.Equal(ids, answers[i].Reply_PromptTokens);
            var expected = gpt.GenerateTokens([ids], new GenerationOptions { MaxNewTokens = 12, DoSample = true, Seed = 5 })[0];
            Assert.Equal(expected.Text, answers[i].Reply);
        }
    }

    [Theory]
    [InlineData(ModelStorage.Reference)]
    [InlineData(ModelStorage.Embed)]
    public void A_saved_chat_pipeline_loads_and_answers_the_same(ModelStorage storage)
    {
        // The template lives in chat_template.jinja here (the config's own is a bare one it replaces), so an
        // embedded folder must carry that file too: without it the prompts would be the bare question.
        var folder = HfConversation.FixtureWithConfig(c => c["chat_template"] = "{{ messages[-1].content }}");
        File.WriteAllText(Path.Combine(folder, "chat_template.jinja"), new GptModelInfoTemplate(HfConversation.ChatFixtureFolder).Text);
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Rows);
        var fitted = ml.Transforms.Text.GenerateText(Options(folder, "Be brief.", storage)).Fit(data);
        var before = Run(ml, fitted);
        string zip = Path.Combine(Fixtures.TempFolder("chat-pipeline"), "pipeline.zip");
        ml.Model.Save(fitted, data.Schema, zip);
        (fitted as IDisposable)?.Dispose();
        if (storage == ModelStorage.Embed) Directory.Delete(folder, recursive: true);

        var fresh = new MLContext(seed: 1);
        var loaded = fresh.Model.Load(zip, out _);
        var after = Run(fresh, loaded);
        (loaded as IDisposable)?.Dispose();
        Assert.Equal(before.Select(a => a.Reply), after.Select(a => a.Reply));
        Assert.Equal(before.Select(a => a.Reply_PromptTokens), after.Select(a => a.Reply_PromptTokens));
        Assert.Contains(after, a => a.Reply_PromptTokens.Length > 20);
    }

    [Fact]
    public void A_tokenize_stage_without_chat_is_unchanged_and_chat_settings_without_chat_are_refused()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(Rows);
        var plain = ml.Transforms.Text.TokenizeText("Ids", "Question", HfConversation.ChatFixtureFolder).Fit(data);
        Assert.False(plain.Chat);
        var chat = ml.Transforms.Text.TokenizeText(new TokenizeTextOptions
        {
            OutputColumnName = "Ids", InputColumnName = "Question", ModelFolder = HfConversation.ChatFixtureFolder, Chat = true, SystemPrompt = "",
        }).Fit(data);
        Assert.True(chat.Chat);
        Assert.Null(chat.SystemPrompt);
        Assert.False(chat.AddBeginningOfSequence);
        var e = Assert.Throws<ArgumentException>(() => ml.Transforms.Text.TokenizeText(new TokenizeTextOptions
        {
            OutputColumnName = "Ids", InputColumnName = "Question", ModelFolder = HfConversation.ChatFixtureFolder, SystemPrompt = "x",
        }));
        Assert.StartsWith("SystemPrompt is set, but Chat is false; set Chat = true to render rows through the chat template.", e.Message);
        var enc = Assert.Throws<ArgumentException>(() => ml.Transforms.Text.TokenizeText(new TokenizeTextOptions
        {
            OutputColumnName = "Ids", InputColumnName = "Question", Encoding = "gpt2", Chat = true,
        }));
        Assert.StartsWith("Chat needs ModelFolder (a folder with a chat template), not the encoding 'gpt2'.", enc.Message);
    }

    [Fact]
    public void Chat_on_a_folder_without_a_template_is_refused_naming_the_folder()
    {
        var ml = new MLContext();
        var e = Assert.Throws<ArgumentException>(() => ml.Transforms.Text.TokenizeText(new TokenizeTextOptions
        {
            OutputColumnName = "Ids", InputColumnName = "Question", ModelFolder = Fixtures.DefaultModel, Chat = true,
        }));
        Assert.StartsWith($"Chat is set, but the model folder '{Path.GetFullPath(Fixtures.DefaultModel)}' has no chat template", e.Message);
    }

    [Fact]
    public void A_row_the_template_refuses_fails_naming_the_row_and_the_column()
    {
        var folder = HfConversation.FixtureWithConfig(c => c["chat_template"] =
            "{% if messages[-1].content == '' %}{{ raise_exception('An empty question cannot be answered.') }}{% endif %}{{ messages[-1].content }}");
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(new[] { new Row { Question = "ok" }, new Row { Question = "" } });
        var stage = ml.Transforms.Text.TokenizeText(new TokenizeTextOptions { OutputColumnName = "Ids", InputColumnName = "Question", ModelFolder = folder, Chat = true }).Fit(data);
        var e = Assert.Throws<InvalidOperationException>(() => ml.Data.CreateEnumerable<IdsRow>(stage.Transform(data), reuseRowObject: false).ToList());
        Assert.Equal($"TokenizeText: row 1 of column 'Question': The chat template 'default' (tokenizer_config.json in '{folder}') refused the conversation: An empty question cannot be answered.", e.Message);
    }

    public sealed class IdsRow
    {
        public int[] Ids { get; set; } = [];
    }

    /// <summary>The fixture's template text, read through the public API.</summary>
    private sealed class GptModelInfoTemplate
    {
        public GptModelInfoTemplate(string folder)
        {
            using var model = GptModel.Open(folder);
            Text = model.ChatTemplate!.Text;
        }

        public string Text { get; }
    }
}

/// <summary>A TokenizeText stage written before chat settings existed (format 0x00010002) still loads.</summary>
public sealed class ChatPersistenceVersionTests
{
    [Fact]
    public void A_tokenize_stage_saved_in_the_format_before_chat_settings_loads_and_tokenizes_as_before()
    {
        var ml = new MLContext();
        var rows = new[] { new ChatPipelineTests.Row { Question = "What is the capital of France?" } };
        var data = ml.Data.LoadFromEnumerable(rows);
        var stage = ml.Transforms.Text.TokenizeText("Ids", "Question", HfConversation.ChatFixtureFolder).Fit(data);
        string zip = Path.Combine(Fixtures.TempFolder("tokenize-v2"), "stage.zip");
        ml.Model.Save(stage, data.Schema, zip);
        // A stage without chat wrote the same JSON in format 0x00010002, less the special-token settings of 0x00010004
        // (blanked here: JSON allows the spaces, and the length-prefixed string keeps its length); nothing is added
        // for this folder, as a 0x00010002 stage without "prepend_bos_token_id" adds nothing.
        Assert.Equal(1, Replace(zip, ",\"add_special_tokens\":true,\"special_prefix\":[],\"special_suffix\":[]",
            new string(' ', ",\"add_special_tokens\":true,\"special_prefix\":[],\"special_suffix\":[]".Length)));
        Assert.Equal(1, RewriteModelVersion(zip, "GPTTOKNZ", 0x00010004, 0x00010002));
        var loaded = new MLContext().Model.Load(zip, out _);
        var ids = new MLContext().Data.CreateEnumerable<ChatPipelineTests.IdsRow>(loaded.Transform(data), reuseRowObject: false).Single().Ids;
        Assert.Equal(ml.Data.CreateEnumerable<ChatPipelineTests.IdsRow>(stage.Transform(data), reuseRowObject: false).Single().Ids, ids);
    }

    [Fact]
    public void A_saved_chat_stage_whose_chat_flag_was_removed_is_refused_naming_the_settings()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(new[] { new ChatPipelineTests.Row { Question = "Hi" } });
        var stage = ml.Transforms.Text.TokenizeText(new TokenizeTextOptions
        {
            OutputColumnName = "Ids", InputColumnName = "Question", ModelFolder = HfConversation.ChatFixtureFolder, Chat = true, SystemPrompt = "Be brief.",
        }).Fit(data);
        string zip = Path.Combine(Fixtures.TempFolder("tokenize-chat"), "stage.zip");
        ml.Model.Save(stage, data.Schema, zip);
        // Same length, so the length-prefixed settings string stays well formed: a null reads as "not a chat stage".
        Assert.Equal(1, Replace(zip, "\"chat\":true", "\"chat\":null"));
        var e = Assert.ThrowsAny<Exception>(() => new MLContext().Model.Load(zip, out _));
        var all = string.Join(" | ", Flatten(e).Select(x => x.Message));
        Assert.Contains("TokenizeText in the saved pipeline: 'system_prompt' and 'chat_template' need 'chat': true.", all);
    }

    private static IEnumerable<Exception> Flatten(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException) yield return x;
    }

    private static int Replace(string zip, string from, string to) => SavedPipelineZip.EditModelKeys(zip, bytes =>
    {
        int at = bytes.AsSpan().IndexOf(System.Text.Encoding.UTF8.GetBytes(from));
        if (at < 0) return false;
        System.Text.Encoding.UTF8.GetBytes(to).CopyTo(bytes, at);
        return true;
    });

    /// <summary>
    /// Sets the version of every stage with <paramref name="modelSignature"/> in a saved zip: ML.NET's model header
    /// holds the 8-byte model signature followed by the written and the readable version (two little-endian uint32).
    /// </summary>
    private static int RewriteModelVersion(string zip, string modelSignature, uint from, uint to) => SavedPipelineZip.EditModelKeys(zip, bytes =>
    {
        int at = bytes.AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(modelSignature));
        if (at < 0 || BitConverter.ToUInt32(bytes, at + 8) != from) return false;
        BitConverter.GetBytes(to).CopyTo(bytes, at + 8);
        BitConverter.GetBytes(to).CopyTo(bytes, at + 12);
        return true;
    });
}
