using MLNetGpt.Training;
using Xunit;

namespace MLNetGpt.Tests.Training;

/// <summary>The test double is itself exact: its analytic gradient matches finite differences of its loss.</summary>
public sealed class BigramGraphTests
{
    [Fact]
    public void The_bigram_graph_gradient_matches_central_finite_differences_of_its_summed_loss()
    {
        var graph = new BigramGraph(vocabulary: 6, dimension: 3, seed: 4);
        long[] inputs = [0, 3, 5, 2, 2, 1, 4, 0];
        long[] targets = [3, 5, SequencePacker.Ignored, 2, 1, 4, 0, SequencePacker.Ignored];
        var (_, tokens) = graph.ForwardBackward(inputs, targets, 2, 4);
        Assert.Equal(6, tokens);
        var analytic = graph.Parameters.Select(p => p.Gradient.ToArray()).ToArray();
        int checkedValues = 0;
        for (int t = 0; t < graph.Parameters.Count; t++)
        {
            var value = graph.Parameters[t].Value;
            for (int i = 0; i < value.Length; i++)
            {
                float original = value[i];
                value[i] = original + 1e-2f;
                double plusStep = value[i] - original;
                double plus = graph.LossSum(inputs, targets, 2, 4);
                value[i] = original - 1e-2f;
                double minusStep = original - value[i];
                double minus = graph.LossSum(inputs, targets, 2, 4);
                value[i] = original;
                double numeric = (plus - minus) / (plusStep + minusStep);
                Assert.True(Math.Abs(numeric - analytic[t][i]) <= 2e-4 + 1e-3 * Math.Abs(numeric),
                    $"{graph.Parameters[t].Name}[{i}]: analytic {analytic[t][i]}, numeric {numeric}");
                checkedValues++;
            }
        }
        Assert.Equal(6 * 3 + 3 * 6 + 6, checkedValues);
        Assert.Contains(analytic[0], g => Math.Abs(g) > 1e-3);   // the check is not vacuous
    }

    [Fact]
    public void Evaluate_counts_the_same_loss_as_forward_backward_and_leaves_the_gradients_alone()
    {
        var graph = new BigramGraph(vocabulary: 5, dimension: 2, seed: 9);
        long[] inputs = [1, 2, 3, 4];
        long[] targets = [2, 3, 4, SequencePacker.Ignored];
        var trained = graph.ForwardBackward(inputs, targets, 1, 4);
        var gradients = graph.Parameters.Select(p => p.Gradient.ToArray()).ToArray();
        var evaluated = graph.Evaluate(inputs, targets, 1, 4);
        Assert.Equal(trained, evaluated);
        for (int t = 0; t < gradients.Length; t++) Assert.Equal(gradients[t], graph.Parameters[t].Gradient);
    }
}
