namespace MLNetGpt.Training;

/// <summary>
/// Global-norm clipping with torch's <c>torch.nn.utils.clip_grad_norm_</c> semantics (norm type 2): the total norm is the
/// norm of the per-tensor norms; every gradient is multiplied by min(1, max_norm / (total + 1e-6)).
/// </summary>
internal static class GradientClipping
{
    /// <summary>Scales <paramref name="gradients"/> in place when their global norm exceeds <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    public static double Clip(IReadOnlyList<float[]> gradients, double? maxNorm)
    {
        float total = GlobalNorm(gradients);
        if (maxNorm is not double max) return total;
        float coefficient = (float)max / (total + 1e-6f);
        if (coefficient < 1f)
        {
            foreach (var g in gradients)
                for (int i = 0; i < g.Length; i++) g[i] *= coefficient;
        }
        return total;
    }

    /// <summary>The L2 norm of all gradients together, computed per tensor and then over the tensors' norms.</summary>
    public static float GlobalNorm(IReadOnlyList<float[]> gradients)
    {
        double sumOfSquares = 0;
        foreach (var g in gradients)
        {
            double tensorSum = 0;
            for (int i = 0; i < g.Length; i++) tensorSum += (double)g[i] * g[i];
            float norm = (float)Math.Sqrt(tensorSum);
            sumOfSquares += (double)norm * norm;
        }
        return (float)Math.Sqrt(sumOfSquares);
    }
}
