using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Schema;
using Microsoft.Extensions.AI;
using MLNetGpt.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace MLNetGpt.Tests.Chat;

/// <summary>Records, nested classes, lists, dictionaries, enums, nullable members and a recursive type, as .NET describes them.</summary>
public static class DotNetTypes
{
    public enum Color { Red, Green, Blue }

    [Description("Where someone lives")]
    public sealed record Address([property: Description("The city")] string City, string? Zip);

    public sealed class Person
    {
        [Description("The full name")]
        public string Name { get; set; } = "";

        public int Age { get; set; }

        public Color Favorite { get; set; }

        public List<string> Tags { get; set; } = [];

        public Dictionary<string, int> Scores { get; set; } = [];

        public Address? Home { get; set; }

        public double? Height { get; set; }

        public List<Address> Past { get; set; } = [];
    }

    public sealed class TreeNode
    {
        public string Label { get; set; } = "";

        public List<TreeNode>? Children { get; set; }
    }
}

/// <summary>
/// The schemas that Microsoft.Extensions.AI (<c>AIJsonUtilities.CreateJsonSchema</c>) and System.Text.Json
/// (<c>JsonSchemaExporter</c>) write for .NET types compile, and what the tiny chat fixture samples under them at
/// temperature 1 always reads back into the type; <c>GetResponseAsync&lt;T&gt;</c> returns a <c>T</c>.
/// </summary>
public sealed class DotNetTypeSchemaTests(ITestOutputHelper output) : IDisposable
{
    private static readonly ChatMessage[] Question = [new(ChatRole.User, "Describe someone.")];
    private readonly GptModel _model = GptModel.Open(HfConversation.ChatFixtureFolder);

    public void Dispose() => _model.Dispose();

    public static readonly TheoryData<string, string> Cases = new()
    {
        { "Person", "Microsoft.Extensions.AI" }, { "Person", "System.Text.Json" },
        { "TreeNode", "Microsoft.Extensions.AI" }, { "TreeNode", "System.Text.Json" },
    };

    private static Type TypeOf(string name) => name == "Person" ? typeof(DotNetTypes.Person) : typeof(DotNetTypes.TreeNode);

    private static (JsonElement Schema, JsonSerializerOptions Options) SchemaOf(string type, string exporter) => exporter == "System.Text.Json"
        ? (JsonSerializer.SerializeToElement(JsonSerializerOptions.Default.GetJsonSchemaAsNode(TypeOf(type), new JsonSchemaExporterOptions { TreatNullObliviousAsNonNullable = true })), JsonSerializerOptions.Default)
        : (AIJsonUtilities.CreateJsonSchema(TypeOf(type), serializerOptions: AIJsonUtilities.DefaultOptions), AIJsonUtilities.DefaultOptions);

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task The_schema_of_a_dotnet_type_compiles_and_every_sampled_output_reads_back_into_the_type(string type, string exporter)
    {
        var (schema, options) = SchemaOf(type, exporter);
        output.WriteLine(schema.GetRawText());
        OutputConstraint.JsonSchema(schema.GetRawText());      // accepted
        using var client = new GptChatClient(_model);
        for (int seed = 0; seed < 4; seed++)
        {
            var response = await client.GetResponseAsync(Question, new ChatOptions
            {
                ResponseFormat = ChatResponseFormat.ForJsonSchema(schema, type), Temperature = 1f, Seed = seed, MaxOutputTokens = 400,
            });
            output.WriteLine($"seed {seed}: {response.Text}");
            Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
            var value = JsonSerializer.Deserialize(response.Text, TypeOf(type), options);     // throws when it does not read back
            Assert.NotNull(value);
        }
    }

    [Fact]
    public async Task GetResponseAsync_of_a_type_returns_an_instance_of_it()
    {
        using var client = new GptChatClient(_model);
        for (int seed = 0; seed < 3; seed++)
        {
            var person = await client.GetResponseAsync<DotNetTypes.Person>(Question, new ChatOptions { Temperature = 1f, Seed = seed, MaxOutputTokens = 400 });
            output.WriteLine($"seed {seed}: {person.Text}");
            Assert.True(person.TryGetResult(out var result), $"seed {seed}: '{person.Text}' is not a Person");
            Assert.NotNull(result);
            var tree = await client.GetResponseAsync<DotNetTypes.TreeNode>(Question, new ChatOptions { Temperature = 1f, Seed = seed, MaxOutputTokens = 400 });
            Assert.IsType<DotNetTypes.TreeNode>(tree.Result);
        }
    }
}
