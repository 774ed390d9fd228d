using MLNetGpt.Models.Onnx.Protos;

namespace MLNetGpt.Models.Onnx;

/// <summary>Walks a graph and the subgraphs its nodes carry as attributes (If branches, Loop and Scan bodies).</summary>
internal static class OnnxGraphs
{
    /// <summary>The graph and every graph nested in its nodes' attributes, outermost first.</summary>
    public static IEnumerable<GraphProto> All(GraphProto? graph)
    {
        if (graph is null) yield break;
        var pending = new Queue<GraphProto>();
        pending.Enqueue(graph);
        while (pending.Count > 0)
        {
            var current = pending.Dequeue();
            yield return current;
            foreach (var sub in Subgraphs(current)) pending.Enqueue(sub);
        }
    }

    /// <summary>The graphs held directly by the attributes of <paramref name="graph"/>'s nodes.</summary>
    public static IEnumerable<GraphProto> Subgraphs(GraphProto graph)
    {
        foreach (var node in graph.Node)
            foreach (var sub in Subgraphs(node))
                yield return sub;
    }

    public static IEnumerable<GraphProto> Subgraphs(NodeProto node)
    {
        foreach (var attribute in node.Attribute)
        {
            if (attribute.G is { } g) yield return g;
            foreach (var sub in attribute.Graphs) yield return sub;
        }
    }

    /// <summary>Every tensor of a model: initializers and attribute tensors of all its graphs.</summary>
    public static IEnumerable<TensorProto> AllTensors(ModelProto model)
    {
        foreach (var graph in All(model.Graph))
        {
            foreach (var t in graph.Initializer) yield return t;
            foreach (var node in graph.Node)
                foreach (var attribute in node.Attribute)
                {
                    if (attribute.T is { } t) yield return t;
                    foreach (var each in attribute.Tensors) yield return each;
                }
        }
    }

    /// <summary>
    /// Every name a node reads or a graph returns, in <paramref name="graph"/> and all its subgraphs.
    /// A subgraph may read its outer graphs' values, so a value is unused only if no graph below
    /// its own reads it.
    /// </summary>
    public static HashSet<string> NamesRead(GraphProto graph)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var g in All(graph))
        {
            foreach (var node in g.Node)
                foreach (var input in node.Input)
                    if (input.Length > 0) names.Add(input);
            foreach (var output in g.Output) names.Add(output.Name);
        }
        return names;
    }
}
