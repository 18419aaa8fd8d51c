import { packageConfig } from '../../scripts/tsup.base';

export default packageConfig({ entry: ['src/index.ts', 'src/datapath.ts'], splitting: true });
