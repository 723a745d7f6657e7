builtin.module {
  func.func @main(%0: tensor<4x1x28x28xf32>) -> tensor<4x10xf32> {
    %1 = nn.weight {name = "conv1.weight", hash = "35ec0964431723bd"} : () -> tensor<6x1x5x5xf32>
    %2 = nn.conv2d %0, %1 {padding = array<i64: 2, 2, 2, 2>} : (tensor<4x1x28x28xf32>, tensor<6x1x5x5xf32>) -> tensor<4x6x28x28xf32>
    %3 = nn.weight {name = "conv1.bn.scale", hash = "fb29169b887b1a80"} : () -> tensor<6xf32>
    %4 = nn.weight {name = "conv1.bn.bias", hash = "2565a27607d679aa"} : () -> tensor<6xf32>
    %5 = nn.weight {name = "conv1.bn.mean", hash = "f51a7cba05874229"} : () -> tensor<6xf32>
    %6 = nn.weight {name = "conv1.bn.var", hash = "d640349a0066c599"} : () -> tensor<6xf32>
    %7 = nn.batchnorm %2, %3, %4, %5, %6 : (tensor<4x6x28x28xf32>, tensor<6xf32>, tensor<6xf32>, tensor<6xf32>, tensor<6xf32>) -> tensor<4x6x28x28xf32>
    %8 = nn.relu %7 : (tensor<4x6x28x28xf32>) -> tensor<4x6x28x28xf32>
    %9 = nn.maxpool2d %8 {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>} : (tensor<4x6x28x28xf32>) -> tensor<4x6x14x14xf32>
    %10 = nn.weight {name = "conv2.weight", hash = "46f5494c9a76a209"} : () -> tensor<16x6x5x5xf32>
    %11 = nn.conv2d %9, %10 : (tensor<4x6x14x14xf32>, tensor<16x6x5x5xf32>) -> tensor<4x16x10x10xf32>
    %12 = nn.weight {name = "conv2.bn.scale", hash = "f498d0bda552052f"} : () -> tensor<16xf32>
    %13 = nn.weight {name = "conv2.bn.bias", hash = "03815d4838c3c9a0"} : () -> tensor<16xf32>
    %14 = nn.weight {name = "conv2.bn.mean", hash = "1da2982e30c77b2c"} : () -> tensor<16xf32>
    %15 = nn.weight {name = "conv2.bn.var", hash = "31af287eaed4c3bd"} : () -> tensor<16xf32>
    %16 = nn.batchnorm %11, %12, %13, %14, %15 : (tensor<4x16x10x10xf32>, tensor<16xf32>, tensor<16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<4x16x10x10xf32>
    %17 = nn.relu %16 : (tensor<4x16x10x10xf32>) -> tensor<4x16x10x10xf32>
    %18 = nn.maxpool2d %17 {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>} : (tensor<4x16x10x10xf32>) -> tensor<4x16x5x5xf32>
    %19 = nn.flatten %18 : (tensor<4x16x5x5xf32>) -> tensor<4x400xf32>
    %20 = nn.weight {name = "fc1.weight_t", hash = "26e5ef9cd6481f8d"} : () -> tensor<400x120xf32>
    %21 = nn.transpose %20 {perm = array<i64: 1, 0>} : (tensor<400x120xf32>) -> tensor<120x400xf32>
    %22 = nn.weight {name = "fc1.bias", hash = "cbdcc0b7054501a3"} : () -> tensor<120xf32>
    %23 = nn.linear %19, %21, %22 : (tensor<4x400xf32>, tensor<120x400xf32>, tensor<120xf32>) -> tensor<4x120xf32>
    %24 = nn.relu %23 : (tensor<4x120xf32>) -> tensor<4x120xf32>
    %25 = nn.weight {name = "fc2.weight_t", hash = "974a97c319d33927"} : () -> tensor<120x84xf32>
    %26 = nn.transpose %25 {perm = array<i64: 1, 0>} : (tensor<120x84xf32>) -> tensor<84x120xf32>
    %27 = nn.weight {name = "fc2.bias", hash = "167e3f062247cb1a"} : () -> tensor<84xf32>
    %28 = nn.linear %24, %26, %27 : (tensor<4x120xf32>, tensor<84x120xf32>, tensor<84xf32>) -> tensor<4x84xf32>
    %29 = nn.relu %28 : (tensor<4x84xf32>) -> tensor<4x84xf32>
    %30 = nn.weight {name = "fc3.weight_t", hash = "cba05b60c9438d6a"} : () -> tensor<84x10xf32>
    %31 = nn.transpose %30 {perm = array<i64: 1, 0>} : (tensor<84x10xf32>) -> tensor<10x84xf32>
    %32 = nn.weight {name = "fc3.bias", hash = "5f34e490adab4978"} : () -> tensor<10xf32>
    %33 = nn.linear %29, %31, %32 : (tensor<4x84xf32>, tensor<10x84xf32>, tensor<10xf32>) -> tensor<4x10xf32>
    %34 = nn.softmax %33 : (tensor<4x10xf32>) -> tensor<4x10xf32>
    func.return %34 : tensor<4x10xf32>
  }
}
