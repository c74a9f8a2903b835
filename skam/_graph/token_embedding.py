"""Images to tokens and back: patches, the linear embedding, MASK/CLS tokens and
the position code of the Energy Transformer.

An image row of length ``C * H * W`` (C-order of ``(C, H, W)``) is cut into
``kh * kw`` patches of ``ph * pw`` pixels; each patch is flattened in ``(c, ph,
pw)`` order (the layout of the published ET checkpoint) and is one token::

    e_B  = patch_B W_enc + b_enc            (visible patches)
    e_B  = mask_token                       (masked patches)
    x0   = [cls_token, e_1, ..., e_N] + pos (cls_token only when present)

The read-out decodes the layer-normed tokens ``g``: ``patch_B = g_B W_dec +
b_dec``.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Patcher:
    """Cut ``(C, H, W)`` images into ``(C, ph, pw)`` patches and back."""

    image_shape: tuple  # (C, H, W)
    patch_shape: tuple  # (ph, pw)

    @property
    def grid(self):
        _, H, W = self.image_shape
        ph, pw = self.patch_shape
        return H // ph, W // pw

    @property
    def n_patches(self):
        kh, kw = self.grid
        return kh * kw

    @property
    def patch_size(self):
        C = self.image_shape[0]
        ph, pw = self.patch_shape
        return C * ph * pw

    def patchify(self, X, xp):
        """(n, C*H*W) -> (n, n_patches, C*ph*pw)."""
        C = self.image_shape[0]
        kh, kw = self.grid
        ph, pw = self.patch_shape
        a = xp.reshape(X, (X.shape[0], C, kh, ph, kw, pw))
        a = xp.permute_dims(a, (0, 2, 4, 1, 3, 5))
        return xp.reshape(a, (X.shape[0], kh * kw, C * ph * pw))

    def unpatchify(self, patches, xp):
        """(n, n_patches, C*ph*pw) -> (n, C*H*W)."""
        C, H, W = self.image_shape
        kh, kw = self.grid
        ph, pw = self.patch_shape
        a = xp.reshape(patches, (patches.shape[0], kh, kw, C, ph, pw))
        a = xp.permute_dims(a, (0, 3, 1, 4, 2, 5))
        return xp.reshape(a, (patches.shape[0], C * H * W))


def embed(params, patches, token_mask, xp):
    """Initial tokens ``x0`` of shape (n, N, D) (N counts the CLS token).

    Parameters
    ----------
    params : dict
        ``W_enc`` (Z, D), ``b_enc`` (D,), ``mask_token`` (D,), ``pos`` (N, D),
        ``cls_token`` (D,) or absent.
    patches : array of shape (n, n_patches, Z)
        Pixel patches (finite; masked ones are ignored).
    token_mask : bool array of shape (n, n_patches)
        True where a patch is masked (replaced by the MASK token).
    """
    e = patches @ params["W_enc"] + params["b_enc"]
    e = xp.where(token_mask[:, :, None], params["mask_token"], e)
    cls = params.get("cls_token")
    if cls is not None:
        n, _, D = e.shape
        first = xp.broadcast_to(xp.reshape(cls, (1, 1, D)), (n, 1, D))
        e = xp.concat([first, e], axis=1)
    return e + params["pos"]


def embed_vjp(params, patches, token_mask, cot, xp):
    """Gradients of ``<cot, embed(...)>`` with respect to the parameters."""
    grads = {"pos": xp.sum(cot, axis=0)}
    if params.get("cls_token") is not None:
        grads["cls_token"] = xp.sum(cot[:, 0, :], axis=0)
        cot = cot[:, 1:, :]
    m = xp.astype(token_mask, cot.dtype)[:, :, None]
    grads["mask_token"] = xp.sum(xp.sum(cot * m, axis=0), axis=0)
    visible = cot * (1.0 - m)
    Z = patches.shape[2]
    D = cot.shape[2]
    grads["W_enc"] = xp.matrix_transpose(xp.reshape(patches, (-1, Z))) @ xp.reshape(
        visible, (-1, D)
    )
    grads["b_enc"] = xp.sum(xp.sum(visible, axis=0), axis=0)
    return grads
