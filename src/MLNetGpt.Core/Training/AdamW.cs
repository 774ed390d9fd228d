namespace MLNetGpt.Training;

/// <summary>
/// AdamW exactly as torch 1.13's <c>torch.optim.AdamW</c> (single-tensor path, amsgrad off) computes it in float32:
/// decoupled weight decay <c>p *= 1 - lr·wd</c> (on tensors marked <see cref="TrainableTensor.Decay"/>; the others are in a
/// group with weight decay 0), then <c>m = β1·m + (1-β1)·g</c>, <c>v = β2·v + (1-β2)·g·g</c>, and
/// <c>p += -(lr / (1-β1^t)) · m / (sqrt(v) / sqrt(1-β2^t) + ε)</c>, with the scalars computed in double and applied in
/// float32 in torch's order of operations.
/// </summary>
internal sealed class AdamW
{
    private readonly IReadOnlyList<TrainableTensor> _parameters;
    private readonly double _beta1, _beta2, _epsilon, _weightDecay;

    public AdamW(IReadOnlyList<TrainableTensor> parameters, double beta1, double beta2, double epsilon, double weightDecay)
    {
        _parameters = parameters;
        _beta1 = beta1;
        _beta2 = beta2;
        _epsilon = epsilon;
        _weightDecay = weightDecay;
        FirstMoments = parameters.Select(p => new float[p.Value.Length]).ToArray();
        SecondMoments = parameters.Select(p => new float[p.Value.Length]).ToArray();
    }

    /// <summary>torch's <c>exp_avg</c> per parameter.</summary>
    public float[][] FirstMoments { get; }

    /// <summary>torch's <c>exp_avg_sq</c> per parameter.</summary>
    public float[][] SecondMoments { get; }

    /// <summary>Steps taken (torch's <c>state['step']</c>).</summary>
    public int Steps { get; set; }

    /// <summary>One update of every parameter with its gradient in <paramref name="gradients"/> (same order as the parameters).</summary>
    public void Step(IReadOnlyList<float[]> gradients, double learningRate)
    {
        Steps++;
        double biasCorrection1 = 1 - Math.Pow(_beta1, Steps);
        double biasCorrection2 = 1 - Math.Pow(_beta2, Steps);
        float negativeStepSize = (float)-(learningRate / biasCorrection1);
        float biasCorrection2Sqrt = (float)Math.Sqrt(biasCorrection2);
        float beta1 = (float)_beta1, oneMinusBeta1 = (float)(1 - _beta1);
        float beta2 = (float)_beta2, oneMinusBeta2 = (float)(1 - _beta2);
        float epsilon = (float)_epsilon;
        float decay = (float)(1 - learningRate * _weightDecay);
        for (int t = 0; t < _parameters.Count; t++)
        {
            var p = _parameters[t].Value;
            var g = gradients[t];
            var m = FirstMoments[t];
            var v = SecondMoments[t];
            bool decays = _parameters[t].Decay && _weightDecay != 0;
            for (int i = 0; i < p.Length; i++)
            {
                if (decays) p[i] *= decay;
                m[i] = m[i] * beta1 + oneMinusBeta1 * g[i];
                v[i] = v[i] * beta2 + oneMinusBeta2 * g[i] * g[i];
                float denominator = MathF.Sqrt(v[i]) / biasCorrection2Sqrt + epsilon;
                p[i] += negativeStepSize * m[i] / denominator;
            }
        }
    }
}
