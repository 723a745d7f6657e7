// RUN: ircomp opt %s | filecheck %s
// RUN: ircomp opt %s --generic | filecheck %s --check-prefix=GENERIC
// RUN: ircomp opt %s --generic | ircomp opt - | diff - <(ircomp opt %s)

// CHECK-LABEL: func.func @main(%0: tensor<2x3x8x8x!num.fixp<8, 4>>, %1: tensor<4x3x3x3x!num.posit<4, 1>>)
// CHECK-NEXT:    %2 = nn.conv2d %0, %1 {strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : (tensor<2x3x8x8x!num.fixp<8, 4>>, tensor<4x3x3x3x!num.posit<4, 1>>) -> tensor<2x4x4x4x!num.fixp<32, 8>>
// CHECK-NEXT:    %3 = nn.relu %2 : (tensor<2x4x4x4x!num.fixp<32, 8>>) -> tensor<2x4x4x4x!num.fixp<32, 8>>
// CHECK-NEXT:    %4 = nn.requantize %3 {scale = array<f64: 6.250000e-02>, mode = "onnx"} : (tensor<2x4x4x4x!num.fixp<32, 8>>) -> tensor<2x4x4x4x!num.fixp<8, 4>>
// CHECK-NEXT:    func.return %4

// GENERIC: "nn.conv2d"(%0, %1) <{strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, input_zero_point = 0 : i64, weight_zero_point = 0 : i64}>

func.func @main(%x: tensor<2x3x8x8x!num.fixp<8, 4>>, %w: tensor<4x3x3x3x!num.posit<4, 1>>) -> tensor<2x4x4x4x!num.fixp<8, 4>> {
  %y = nn.conv2d %x, %w {strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : (tensor<2x3x8x8x!num.fixp<8, 4>>, tensor<4x3x3x3x!num.posit<4, 1>>) -> tensor<2x4x4x4x!num.fixp<32, 8>>
  %r = nn.relu %y : (tensor<2x4x4x4x!num.fixp<32, 8>>) -> tensor<2x4x4x4x!num.fixp<32, 8>>
  %q = nn.requantize %r {mode = "onnx", scale = array<f64: 0.0625>} : (tensor<2x4x4x4x!num.fixp<32, 8>>) -> tensor<2x4x4x4x!num.fixp<8, 4>>
  func.return %q : tensor<2x4x4x4x!num.fixp<8, 4>>
}
